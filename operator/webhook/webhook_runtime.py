"""Starting the eviction webhook inside the operator: certificate, CA publication, pod cache,
HTTPS server; and stopping them in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes.client import ApiClient
from prometheus_client import CollectorRegistry

from oomguard.operator.webhook import serving_cert
from oomguard.operator.webhook.ca_bundle_patch import publish_ca
from oomguard.operator.webhook.cert_reload import CertReloader
from oomguard.operator.webhook.eviction_cap import EvictionCap
from oomguard.operator.webhook.pod_placements import PodPlacementCache
from oomguard.operator.webhook.webhook_metrics import WebhookMetrics
from oomguard.operator.webhook.webhook_server import EvictionWebhook, WebhookServer

logger = logging.getLogger(__name__)

WEBHOOK_NAME = "agent-evictions.oomguard.io"


@dataclass(frozen=True)
class WebhookOptions:
    port: int  # where to listen (the chart: 9443)
    agent_usernames: tuple[str, ...]  # system:serviceaccount:<ns>:<agent service account>
    host: str = "0.0.0.0"  # noqa: S104 - the apiserver reaches the pod through its Service
    cert_dir: Path | None = None  # a mounted TLS Secret (tls.crt, tls.key); None: generate
    service: str | None = None  # generated certificate: the webhook Service's name ...
    namespace: str | None = None  # ... and namespace
    extra_hosts: tuple[str, ...] = ()  # more names/IPs for the generated certificate
    configuration: str | None = None  # ValidatingWebhookConfiguration to publish the CA in
    webhook_names: tuple[str, ...] = field(default=(WEBHOOK_NAME,))
    fetch_timeout: float = 2.0  # cache miss: how long the one GET may take
    cert_check_seconds: float = 60.0  # how often the certificate is reloaded/renewed/re-published
    max_evictions: int = 0  # the agents' evictions allowed in any window, cluster-wide; 0: no cap
    eviction_window_seconds: float = 60.0

    def __post_init__(self) -> None:
        if not self.agent_usernames:
            raise ValueError("the webhook needs the agent's ServiceAccount user name")
        for name in self.agent_usernames:
            if not name.startswith("system:serviceaccount:") or name.count(":") != 3:
                raise ValueError(f"not a ServiceAccount user name: {name!r}")

    def cert_hosts(self) -> list[str]:
        hosts = []
        if self.service and self.namespace:
            hosts += serving_cert.service_hosts(self.service, self.namespace)
        return hosts + list(self.extra_hosts)


def service_account_username(value: str) -> str:
    """``ns:name`` or the full ``system:serviceaccount:ns:name`` -> the full user name."""
    prefix = "system:serviceaccount:"
    full = value if value.startswith(prefix) else prefix + value
    if full.count(":") != 3 or not all(full.split(":")[2:]):
        raise ValueError(f"expected NAMESPACE:NAME, got {value!r}")
    return full


@dataclass
class RunningWebhook:
    server: WebhookServer
    webhook: EvictionWebhook
    placements: PodPlacementCache
    cert: serving_cert.ServingCert
    reloader: CertReloader


@contextlib.asynccontextmanager
async def running_webhook(
    options: WebhookOptions,
    api_client: ApiClient,
    registry: CollectorRegistry | None = None,
    *,
    wait_for_sync: float = 30.0,
) -> AsyncIterator[RunningWebhook]:
    if options.cert_dir is not None:
        cert = serving_cert.load(options.cert_dir)
    else:
        hosts = options.cert_hosts()
        if not hosts:
            raise ValueError("a generated certificate needs the Service name and namespace")
        cert = serving_cert.generate(hosts)
    placements = PodPlacementCache(api_client)
    placements.start()
    metrics = WebhookMetrics(registry)
    webhook = EvictionWebhook(
        placements,
        options.agent_usernames,
        metrics,
        fetch_timeout=options.fetch_timeout,
        cap=EvictionCap(options.max_evictions, options.eviction_window_seconds),
    )
    context = serving_cert.ssl_context(cert)
    server = WebhookServer(webhook, options.host, options.port, context)
    configuration = options.configuration

    def publish(ca_pem: bytes) -> None:
        assert configuration is not None
        publish_ca(api_client, configuration, options.webhook_names, ca_pem)

    reloader = CertReloader(
        context,
        cert,
        cert_dir=options.cert_dir,
        hosts=options.cert_hosts(),
        publish=publish if cert.ca_pem is not None and configuration else None,
        metrics=metrics,
    )
    stop_reloads = asyncio.Event()
    reloads: asyncio.Task[None] | None = None
    try:
        # Serve at once: until the cache is listed, misses fall back to one GET each.
        await server.start()
        if cert.ca_pem is not None and configuration:
            await asyncio.to_thread(publish, cert.ca_pem)
        reloads = asyncio.create_task(reloader.run(stop_reloads, options.cert_check_seconds))
        synced = await asyncio.to_thread(placements.synced.wait, wait_for_sync)
        if not synced:
            logger.warning(
                "pod cache not listed after %.0fs; serving with GET fallback", wait_for_sync
            )
        yield RunningWebhook(server, webhook, placements, cert, reloader)
    finally:
        stop_reloads.set()
        if reloads is not None:
            await reloads
        await server.stop()
        await asyncio.to_thread(placements.stop)
