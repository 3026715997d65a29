"""kopf's login in a pod, at the apiserver address the pod's environment names.

kopf's own service-account login talks to ``https://kubernetes.default.svc``, a name only
cluster DNS resolves. client-go (and the kubernetes client the agent uses) take the address
from ``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT`` instead, which the kubelet puts
in every pod. The operator does the same, so it keeps working when cluster DNS does not
(a cluster in trouble, a node without CoreDNS).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import kopf


def apiserver_url(env: Mapping[str, str]) -> str | None:
    """``https://host:port`` from the pod's environment; None outside a pod."""
    host = env.get("KUBERNETES_SERVICE_HOST", "").strip()
    port = env.get("KUBERNETES_SERVICE_PORT", "").strip()
    if not host or not port:
        return None
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return f"https://{host}:{port}"


def login_with_service_account(
    env: Mapping[str, str] | None = None, **kwargs: Any
) -> kopf.ConnectionInfo | None:
    """kopf's service-account credentials, pointed at the address from the environment."""
    info = kopf.login_with_service_account(**kwargs)
    url = apiserver_url(os.environ if env is None else env)
    if info is None or url is None:
        return info
    return dataclasses.replace(info, server=url)
