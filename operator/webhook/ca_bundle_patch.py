"""Publishing a generated CA: add it to the caBundle of our webhooks in the configuration.

The patch is a JSON patch guarded by a ``test`` of the resourceVersion, so two replicas
starting at once never overwrite each other's CA: the loser reads again and merges again.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Collection, Mapping
from typing import Any

from kubernetes.client import AdmissionregistrationV1Api, ApiClient
from kubernetes.client.exceptions import ApiException

from oomguard.operator.webhook.serving_cert import merged_ca_bundle

logger = logging.getLogger(__name__)


def ca_bundle_patch(
    configuration: Mapping[str, Any], webhook_names: Collection[str], own_ca_pem: bytes
) -> list[dict[str, Any]]:
    """JSON patch operations adding ``own_ca_pem`` to the named webhooks' caBundle.

    Empty when there is nothing to change. Raises LookupError if none of the names is there.
    """
    webhooks = configuration.get("webhooks") or []
    ops: list[dict[str, Any]] = []
    found = False
    for index, webhook in enumerate(webhooks):
        if webhook.get("name") not in webhook_names:
            continue
        found = True
        current_b64 = (webhook.get("clientConfig") or {}).get("caBundle") or ""
        current = base64.b64decode(current_b64) if current_b64 else b""
        merged = merged_ca_bundle(current, own_ca_pem)
        if merged != current:
            ops.append(
                {
                    "op": "add",
                    "path": f"/webhooks/{index}/clientConfig/caBundle",
                    "value": base64.b64encode(merged).decode("ascii"),
                }
            )
    if not found:
        raise LookupError(f"no webhook named {sorted(webhook_names)} in the configuration")
    if ops:
        version = (configuration.get("metadata") or {}).get("resourceVersion")
        ops.insert(0, {"op": "test", "path": "/metadata/resourceVersion", "value": version})
    return ops


def publish_ca(
    api_client: ApiClient,
    configuration_name: str,
    webhook_names: Collection[str],
    own_ca_pem: bytes,
    *,
    attempts: int = 10,
    retry_delay: float = 0.5,
) -> None:
    """Reads the ValidatingWebhookConfiguration and adds our CA; retries races and absence."""
    api = AdmissionregistrationV1Api(api_client)
    for attempt in range(1, attempts + 1):
        try:
            config = api_client.sanitize_for_serialization(  # type: ignore[no-untyped-call]
                api.read_validating_webhook_configuration(configuration_name)
            )
            ops = ca_bundle_patch(config, webhook_names, own_ca_pem)
            if ops:
                api.patch_validating_webhook_configuration(
                    configuration_name, ops, _content_type="application/json-patch+json"
                )
                logger.info("published the webhook CA in %s", configuration_name)
            return
        except (ApiException, LookupError) as exc:
            if attempt == attempts:
                raise
            status = getattr(exc, "status", None)
            logger.info(
                "caBundle of %s not written yet (%s); retrying", configuration_name, status or exc
            )
            time.sleep(retry_delay)
