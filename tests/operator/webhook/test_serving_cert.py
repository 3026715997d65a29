"""Generated certificates, the caBundle merge and the JSON patch that publishes it."""

from __future__ import annotations

import base64
import datetime as dt
import ssl

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from oomguard.operator.webhook import serving_cert
from oomguard.operator.webhook.ca_bundle_patch import ca_bundle_patch


def test_service_hosts():
    assert serving_cert.service_hosts("hook", "ns") == [
        "hook",
        "hook.ns",
        "hook.ns.svc",
        "hook.ns.svc.cluster.local",
    ]


def test_generated_cert_names_the_hosts_and_chains_to_the_ca():
    cert = serving_cert.generate(["hook.ns.svc", "127.0.0.1"])
    leaf = x509.load_pem_x509_certificate(cert.cert_pem)
    ca = x509.load_pem_x509_certificate(cert.ca_pem)
    san = leaf.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    assert san.get_values_for_type(x509.DNSName) == ["hook.ns.svc"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    leaf.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert serving_cert.ssl_context(cert).minimum_version == ssl.TLSVersion.TLSv1_2


def test_generate_needs_a_host():
    with pytest.raises(ValueError, match="host"):
        serving_cert.generate([])


def test_load_reads_a_tls_secret_dir(tmp_path):
    made = serving_cert.generate(["x"])
    (tmp_path / "tls.crt").write_bytes(made.cert_pem)
    (tmp_path / "tls.key").write_bytes(made.key_pem)
    loaded = serving_cert.load(tmp_path)
    assert (loaded.cert_pem, loaded.key_pem, loaded.ca_pem) == (made.cert_pem, made.key_pem, None)


def cas(bundle):
    return [c.subject.rfc4514_string() for c in x509.load_pem_x509_certificates(bundle)]


def test_merge_puts_ours_first_keeps_foreign_and_caps_generated():
    now = dt.datetime.now(dt.UTC)
    olds = [
        serving_cert.generate(
            ["x"],
            ca_name=f"{serving_cert.CA_COMMON_NAME_PREFIX} {i}",
            now=now - dt.timedelta(hours=10 - i),
        )
        for i in range(6)
    ]
    foreign = serving_cert.generate(["x"], ca_name="corp CA")
    ours = serving_cert.generate(["x"], ca_name=f"{serving_cert.CA_COMMON_NAME_PREFIX} me")
    existing = foreign.ca_pem + b"".join(o.ca_pem for o in olds)
    merged = serving_cert.merged_ca_bundle(existing, ours.ca_pem, keep=4)
    prefix = serving_cert.CA_COMMON_NAME_PREFIX
    assert cas(merged) == [f"CN={prefix} me", "CN=corp CA", f"CN={prefix} 5", f"CN={prefix} 4"]
    # idempotent: merging again changes nothing
    assert serving_cert.merged_ca_bundle(merged, ours.ca_pem, keep=4) == merged


def test_merge_drops_expired_and_unreadable():
    now = dt.datetime.now(dt.UTC)
    expired = serving_cert.generate(["x"], valid_days=1, now=now - dt.timedelta(days=3))
    ours = serving_cert.generate(["x"])
    assert cas(serving_cert.merged_ca_bundle(expired.ca_pem, ours.ca_pem)) == cas(ours.ca_pem)
    assert serving_cert.merged_ca_bundle(b"garbage", ours.ca_pem) == ours.ca_pem


def config(*webhooks, rv="7"):
    return {"metadata": {"name": "c", "resourceVersion": rv}, "webhooks": list(webhooks)}


def test_patch_adds_the_ca_to_the_named_webhook_only_guarded_by_resource_version():
    ours = serving_cert.generate(["x"])
    ops = ca_bundle_patch(
        config({"name": "other", "clientConfig": {}}, {"name": "mine", "clientConfig": {}}),
        ["mine"],
        ours.ca_pem,
    )
    assert ops[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "7"}
    assert [op["path"] for op in ops[1:]] == ["/webhooks/1/clientConfig/caBundle"]
    assert base64.b64decode(ops[1]["value"]) == ours.ca_pem


def test_patch_is_empty_when_published_and_fails_without_the_webhook():
    ours = serving_cert.generate(["x"])
    published = {"caBundle": base64.b64encode(ours.ca_pem).decode()}
    assert (
        ca_bundle_patch(config({"name": "mine", "clientConfig": published}), ["mine"], ours.ca_pem)
        == []
    )
    with pytest.raises(LookupError):
        ca_bundle_patch(config({"name": "other", "clientConfig": {}}), ["mine"], ours.ca_pem)
