"""The webhook serves a renewed certificate without a restart: a mounted Secret that changes,
a generated certificate near its expiry (new CA published first), the caBundle re-published."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from prometheus_client import CollectorRegistry

from oomguard.operator.webhook import serving_cert
from oomguard.operator.webhook.cert_reload import CertReloader
from oomguard.operator.webhook.webhook_metrics import WebhookMetrics

HOSTS = ["127.0.0.1"]


def served_serial(context: ssl.SSLContext) -> int:
    """The serial number of the certificate a fresh TLS handshake with ``context`` presents
    (not verified: which certificate is served is the question here)."""
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE

    async def handshake() -> bytes:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            writer.close()
            return der
        finally:
            server.close()
            await server.wait_closed()

    return x509.load_der_x509_certificate(asyncio.run(handshake())).serial_number


def serial(cert: serving_cert.ServingCert) -> int:
    return x509.load_pem_x509_certificate(cert.cert_pem).serial_number


def write(cert_dir: Path, cert: serving_cert.ServingCert) -> None:
    (cert_dir / "tls.crt").write_bytes(cert.cert_pem)
    (cert_dir / "tls.key").write_bytes(cert.key_pem)


def test_a_renewed_secret_is_served_from_the_next_handshake(tmp_path: Path) -> None:
    first, second = serving_cert.generate(HOSTS), serving_cert.generate(HOSTS)
    write(tmp_path, first)
    mounted = serving_cert.load(tmp_path)
    context = serving_cert.ssl_context(mounted)
    metrics = WebhookMetrics(CollectorRegistry())
    reloader = CertReloader(context, mounted, cert_dir=tmp_path, metrics=metrics)
    assert served_serial(context) == serial(first)
    assert reloader.check() is False  # unchanged files: nothing to do

    write(tmp_path, second)
    assert reloader.check() is True
    assert served_serial(context) == serial(second)
    expiry = metrics.cert_expiry._value.get()
    assert expiry == serving_cert.not_after(second).timestamp()


def test_a_half_written_secret_keeps_the_old_certificate(tmp_path: Path, caplog) -> None:
    first, second = serving_cert.generate(HOSTS), serving_cert.generate(HOSTS)
    write(tmp_path, first)
    context = serving_cert.ssl_context(first)
    reloader = CertReloader(context, serving_cert.load(tmp_path), cert_dir=tmp_path)
    (tmp_path / "tls.crt").write_bytes(second.cert_pem)  # the key is still the old one
    with caplog.at_level("WARNING"):
        assert reloader.check() is False
    assert "not loaded" in caplog.text
    assert served_serial(context) == serial(first)
    (tmp_path / "tls.key").write_bytes(second.key_pem)
    assert reloader.check() is True
    assert served_serial(context) == serial(second)


def test_a_generated_certificate_is_renewed_before_expiry_ca_first() -> None:
    issued = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = serving_cert.generate(HOSTS, valid_days=365, now=issued)
    context = serving_cert.ssl_context(cert)
    published: list[bytes] = []
    failing = {"publish": True}

    def publish(ca_pem: bytes) -> None:
        if failing["publish"]:
            raise RuntimeError("apiserver unreachable")
        published.append(ca_pem)

    reloader = CertReloader(
        context, cert, hosts=HOSTS, publish=publish, renew_before=dt.timedelta(days=30)
    )
    failing["publish"] = False
    assert reloader.check(now=issued + dt.timedelta(days=300)) is False
    assert published == [cert.ca_pem]  # re-published: a helm upgrade may have dropped it

    failing["publish"] = True
    with pytest.raises(RuntimeError):
        reloader.check(now=issued + dt.timedelta(days=340))
    # the new CA could not be published: the old certificate is still served
    assert served_serial(context) == serial(cert)
    assert reloader.cert is cert

    failing["publish"] = False
    assert reloader.check(now=issued + dt.timedelta(days=340)) is True
    renewed = reloader.cert
    assert renewed is not cert and published[-1] == renewed.ca_pem
    assert serving_cert.not_after(renewed) > serving_cert.not_after(cert)
    assert served_serial(context) == serial(renewed)
    san = x509.load_pem_x509_certificate(renewed.cert_pem).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert [str(ip) for ip in san.value.get_values_for_type(x509.IPAddress)] == HOSTS


def test_run_checks_until_stopped() -> None:
    """run() checks on its interval and returns promptly once stop is set."""
    cert = serving_cert.generate(HOSTS)
    checks: list[bytes] = []
    checked = asyncio.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def publish(ca_pem: bytes) -> None:
            checks.append(ca_pem)
            loop.call_soon_threadsafe(checked.set)

        reloader = CertReloader(serving_cert.ssl_context(cert), cert, hosts=HOSTS, publish=publish)
        stop = asyncio.Event()
        task = asyncio.create_task(reloader.run(stop, interval=0.01))
        await asyncio.wait_for(checked.wait(), 10)
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(main())
    assert checks and checks[0] == cert.ca_pem
