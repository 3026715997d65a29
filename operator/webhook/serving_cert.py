"""The webhook's TLS: a certificate the chart mounts, or one the operator makes for itself.

Generated mode: each operator start makes a fresh self-signed CA and a serving certificate for
the webhook Service's DNS names (plus any extra hosts), keeps both in memory only, and adds the
CA to the ValidatingWebhookConfiguration's ``caBundle`` (see :func:`merged_ca_bundle`). Nothing
is stored in a Secret, so the operator needs no Secret permissions at all.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_COMMON_NAME_PREFIX = "oomguard eviction webhook CA"
MAX_BUNDLED_CAS = 5  # generated CAs kept side by side (one per operator replica and restart)


@dataclass(frozen=True)
class ServingCert:
    cert_pem: bytes  # the serving certificate (leaf first, then any chain)
    key_pem: bytes
    ca_pem: bytes | None  # the CA to publish in caBundle (None: someone else publishes it)


def service_hosts(service: str, namespace: str) -> list[str]:
    """The names the apiserver may use for ``service.namespace`` (it uses ``<svc>.<ns>.svc``)."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def generate(
    hosts: Sequence[str],
    *,
    ca_name: str = CA_COMMON_NAME_PREFIX,
    valid_days: int = 365,
    now: dt.datetime | None = None,
) -> ServingCert:
    """A new EC P-256 CA and a serving certificate for ``hosts`` (DNS names or IPs)."""
    if not hosts:
        raise ValueError("a serving certificate needs at least one host name")
    now = now or dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(minutes=5), now + dt.timedelta(days=valid_days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(ca_name))
        .issuer_name(_name(ca_name))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return ServingCert(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
    )


def load(cert_dir: Path) -> ServingCert:
    """``tls.crt`` and ``tls.key`` from a mounted kubernetes.io/tls Secret (cert-manager's too)."""
    return ServingCert(
        cert_pem=(cert_dir / "tls.crt").read_bytes(),
        key_pem=(cert_dir / "tls.key").read_bytes(),
        ca_pem=None,
    )


def ssl_context(cert: ServingCert) -> ssl.SSLContext:
    """A TLS 1.2+ server context serving ``cert``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, cert)
    return context


def load_into(context: ssl.SSLContext, cert: ServingCert) -> None:
    """Serve ``cert`` from ``context`` from the next handshake on (a renewal needs no new
    listener). Raises ssl.SSLError, leaving ``context`` as it was, when the key does not
    match the certificate: OpenSSL would keep the new certificate without a usable key, so
    the pair is tried on a scratch context first."""
    ssl_context(cert)
    _load_chain(context, cert)


def _load_chain(context: ssl.SSLContext, cert: ServingCert) -> None:
    """The key only touches disk in a private temp dir, briefly."""
    with tempfile.TemporaryDirectory(prefix="oomguard-webhook-") as tmp:
        cert_file, key_file = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
        cert_file.write_bytes(cert.cert_pem)
        key_file.touch(mode=0o600)
        key_file.write_bytes(cert.key_pem)
        context.load_cert_chain(cert_file, key_file)


def not_after(cert: ServingCert) -> dt.datetime:
    """When the serving certificate (the first in ``cert_pem``) expires."""
    return x509.load_pem_x509_certificate(cert.cert_pem).not_valid_after_utc


def merged_ca_bundle(
    existing_pem: bytes,
    own_ca_pem: bytes,
    *,
    now: dt.datetime | None = None,
    keep: int = MAX_BUNDLED_CAS,
) -> bytes:
    """The caBundle with our CA added: several replicas (and restarts) each publish their own.

    Kept: our CA first, then the other certificates that are still valid, newest first, at
    most ``keep`` in total; generated CAs of old operator runs drop out as new ones arrive.
    Certificates someone else put there (not named like ours) are always kept.
    """
    now = now or dt.datetime.now(dt.UTC)
    own = x509.load_pem_x509_certificate(own_ca_pem)
    others = [
        c
        for c in _load_all(existing_pem)
        if c.fingerprint(hashes.SHA256()) != own.fingerprint(hashes.SHA256())
        and c.not_valid_after_utc > now
    ]
    foreign = [c for c in others if not _is_generated(c)]
    generated = sorted(
        (c for c in others if _is_generated(c)), key=lambda c: c.not_valid_before_utc, reverse=True
    )
    room = max(keep - 1 - len(foreign), 0)
    chosen = [own, *foreign, *generated[:room]]
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chosen)


def _is_generated(cert: x509.Certificate) -> bool:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return bool(names) and str(names[0].value).startswith(CA_COMMON_NAME_PREFIX)


def _load_all(pem: bytes) -> list[x509.Certificate]:
    if not pem.strip():
        return []
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        return []  # an unreadable bundle is replaced, not kept
