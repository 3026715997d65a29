"""The operator's Kubernetes client: in a pod its ServiceAccount, elsewhere ``$KUBECONFIG``."""

from __future__ import annotations

import os

from kubernetes import config as kube_config
from kubernetes.client import ApiClient


def api_client() -> ApiClient:
    try:
        kube_config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kube_config.ConfigException:
        # The client reads $KUBECONFIG once at import; read it now (tests set it later).
        kube_config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))  # type: ignore[no-untyped-call]
    return ApiClient()
