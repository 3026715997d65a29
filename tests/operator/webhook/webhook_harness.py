"""Shared by the apiserver tests and bench/webhook_latency.py: the eviction webhook in a
background thread on 127.0.0.1, a URL-style ValidatingWebhookConfiguration pointing at it
(matched, like the chart's, only for the agent's ServiceAccount), and a cluster with two
nodes and an agent pod whose bound token names node A."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client import AdmissionregistrationV1Api, ApiClient, RbacAuthorizationV1Api
from kubernetes.client.exceptions import ApiException

from oomguard.operator.webhook.webhook_runtime import (
    WEBHOOK_NAME,
    RunningWebhook,
    WebhookOptions,
    running_webhook,
)
from oomguard.operator.webhook.webhook_server import REVIEW_PATH


def webhook_configuration(
    name: str, url: str, agent_username: str, *, failure_policy: str = "Ignore"
) -> dict[str, Any]:
    """What the chart installs, but with ``clientConfig.url`` (the apiserver runs on the host)."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": failure_policy,
                "timeoutSeconds": 5,
                "matchPolicy": "Equivalent",
                "clientConfig": {"url": url},
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods/eviction"],
                        "scope": "Namespaced",
                    }
                ],
                "matchConditions": [
                    {
                        "name": "oomguard-agent-only",
                        "expression": f"request.userInfo.username == '{agent_username}'",
                    }
                ],
            }
        ],
    }


def install_configuration(api_client: ApiClient, body: dict[str, Any]) -> None:
    api = AdmissionregistrationV1Api(api_client)
    with contextlib.suppress(ApiException):
        api.delete_validating_webhook_configuration(body["metadata"]["name"])
    api.create_validating_webhook_configuration(body)


def delete_configuration(api_client: ApiClient, name: str) -> None:
    with contextlib.suppress(ApiException):
        AdmissionregistrationV1Api(api_client).delete_validating_webhook_configuration(name)


def grant_evictions(api_client: ApiClient, namespace: str, service_account: str) -> None:
    """A Role like the agent's: create pods/eviction, read pods (namespace-scoped here)."""
    rbac = RbacAuthorizationV1Api(api_client)
    role = f"{service_account}-evict"
    with contextlib.suppress(ApiException):
        rbac.create_namespaced_role(
            namespace,
            client.V1Role(
                metadata=client.V1ObjectMeta(name=role),
                rules=[
                    client.V1PolicyRule(
                        api_groups=[""], resources=["pods/eviction"], verbs=["create"]
                    ),
                    client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get"]),
                ],
            ),
        )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name=f"{role}-{service_account}"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name=role
            ),
            subjects=[
                client.RbacV1Subject(
                    kind="ServiceAccount", name=service_account, namespace=namespace
                )
            ],
        ),
    )


@dataclass
class BackgroundWebhook:
    """The webhook runtime (generated cert for 127.0.0.1, CA published) in its own thread."""

    running: RunningWebhook
    loop: asyncio.AbstractEventLoop
    stop: asyncio.Event

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.running.server.port}{REVIEW_PATH}"


@contextlib.contextmanager
def background_webhook(
    api_client: ApiClient, options: WebhookOptions, timeout: float = 60.0
) -> Iterator[BackgroundWebhook]:
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        try:
            async with running_webhook(options, api_client) as running:
                box["hook"] = BackgroundWebhook(running, asyncio.get_running_loop(), stop)
                ready.set()
                await stop.wait()
        except BaseException as exc:
            box["error"] = exc
            ready.set()
            raise

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    if not ready.wait(timeout):
        raise AssertionError("the webhook did not start")
    if "error" in box:
        raise box["error"]
    hook: BackgroundWebhook = box["hook"]
    try:
        yield hook
    finally:
        hook.loop.call_soon_threadsafe(hook.stop.set)
        thread.join(15)
