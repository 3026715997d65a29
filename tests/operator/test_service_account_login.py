from typing import Any

import kopf
import pytest

from oomguard.operator import service_account_login
from oomguard.operator.service_account_login import apiserver_url, login_with_service_account

POD_ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


@pytest.mark.parametrize(
    ("env", "url"),
    [
        (POD_ENV, "https://10.96.0.1:443"),
        (
            {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"},
            "https://[fd00::1]:6443",
        ),
        ({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, None),
        ({"KUBERNETES_SERVICE_PORT": "443"}, None),
        ({}, None),
    ],
)
def test_the_apiserver_address_comes_from_the_pods_environment(env, url):
    assert apiserver_url(env) == url


def service_account(monkeypatch: pytest.MonkeyPatch, info: kopf.ConnectionInfo | None) -> None:
    def kopf_login(**_: Any) -> kopf.ConnectionInfo | None:
        return info

    monkeypatch.setattr(service_account_login.kopf, "login_with_service_account", kopf_login)


def test_in_a_pod_the_token_goes_to_the_address_not_to_a_dns_name(monkeypatch):
    kopfs = kopf.ConnectionInfo(
        server="https://kubernetes.default.svc", token="t", ca_path="/ca.crt"
    )
    service_account(monkeypatch, kopfs)
    info = login_with_service_account(env=POD_ENV)
    assert info is not None
    assert info.server == "https://10.96.0.1:443"
    assert (info.token, info.ca_path) == ("t", "/ca.crt")


def test_without_the_environment_kopfs_address_stands(monkeypatch):
    kopfs = kopf.ConnectionInfo(server="https://kubernetes.default.svc", token="t")
    service_account(monkeypatch, kopfs)
    assert login_with_service_account(env={}) == kopfs


def test_outside_a_pod_there_is_no_service_account_login(monkeypatch):
    service_account(monkeypatch, None)
    assert login_with_service_account(env=POD_ENV) is None
