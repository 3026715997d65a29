"""Keeping the webhook's serving certificate current without restarting the operator.

A mounted Secret (``evictionWebhook.tls.mode`` secret or certManager) changes in place when it
is renewed: the files are read again every check and, when they differ and load, served from
the next TLS handshake on. A generated certificate is renewed ``renew_before`` its expiry: the
new CA is published in the caBundle first (the old one stays there while it is valid, see
``merged_ca_bundle``), then the new certificate is served. Each check also publishes the
current CA again, because a ``helm upgrade`` re-applies the configuration without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path

from oomguard.operator.webhook import serving_cert
from oomguard.operator.webhook.serving_cert import ServingCert
from oomguard.operator.webhook.webhook_metrics import WebhookMetrics

logger = logging.getLogger(__name__)

RENEW_BEFORE = dt.timedelta(days=30)


class CertReloader:
    """One :meth:`check` reloads, renews or re-publishes as needed; :meth:`run` repeats it."""

    def __init__(
        self,
        context: ssl.SSLContext,
        cert: ServingCert,
        *,
        cert_dir: Path | None = None,
        hosts: Sequence[str] = (),
        publish: Callable[[bytes], None] | None = None,
        metrics: WebhookMetrics | None = None,
        renew_before: dt.timedelta = RENEW_BEFORE,
    ) -> None:
        if cert_dir is None and not hosts:
            raise ValueError("renewing a generated certificate needs its host names")
        self._context = context
        self.cert = cert
        self._cert_dir = cert_dir
        self._hosts = list(hosts)
        self._publish = publish
        self._metrics = metrics
        self._renew_before = renew_before
        self._record()

    def check(self, now: dt.datetime | None = None) -> bool:
        """True when a new certificate is served from now on."""
        if self._cert_dir is not None:
            return self._reload_files()
        return self._renew_generated(now or dt.datetime.now(dt.UTC))

    async def run(self, stop: asyncio.Event, interval: float) -> None:
        """Check every ``interval`` seconds until ``stop``; a failed check is retried next time."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            if stop.is_set():
                return
            try:
                await asyncio.to_thread(self.check)
            except Exception:
                logger.exception("webhook certificate check failed; retrying in %.0fs", interval)

    def _reload_files(self) -> bool:
        assert self._cert_dir is not None
        try:
            candidate = serving_cert.load(self._cert_dir)
        except OSError as exc:
            logger.warning("cannot read the webhook certificate in %s: %s", self._cert_dir, exc)
            return False
        if (candidate.cert_pem, candidate.key_pem) == (self.cert.cert_pem, self.cert.key_pem):
            return False
        try:
            serving_cert.load_into(self._context, candidate)
        except (ssl.SSLError, ValueError) as exc:
            # e.g. caught between the certificate's and the key's update: the next check retries
            logger.warning("new webhook certificate in %s not loaded: %s", self._cert_dir, exc)
            return False
        self.cert = candidate
        self._record()
        logger.info("serving the renewed webhook certificate from %s", self._cert_dir)
        return True

    def _renew_generated(self, now: dt.datetime) -> bool:
        if now < serving_cert.not_after(self.cert) - self._renew_before:
            if self._publish is not None and self.cert.ca_pem is not None:
                self._publish(self.cert.ca_pem)  # no write when the caBundle has it
            return False
        renewed = serving_cert.generate(self._hosts, now=now)
        assert renewed.ca_pem is not None
        if self._publish is not None:
            self._publish(renewed.ca_pem)  # trusted before it is served
        serving_cert.load_into(self._context, renewed)
        self.cert = renewed
        self._record()
        logger.info("renewed the generated webhook certificate (expires %s)", self._expiry())
        return True

    def _expiry(self) -> dt.datetime:
        return serving_cert.not_after(self.cert)

    def _record(self) -> None:
        if self._metrics is not None:
            self._metrics.cert_expiry.set(self._expiry().timestamp())
