"""kopf registrations: indices fed by watches, event handlers that request a reconcile, and the
reconcile loop's lifetime. All decisions live in ``resolution``; this file only wires kopf.

Event handlers (``on.event``) are used on purpose: they store nothing on the watched objects
(no finalizers, no progress annotations on 1,000 Nodes), and deletions during downtime are
repaired by the first reconcile after start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import kopf
from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration

from oomguard.operator import pressure_taint_handlers as pressure_taint_handlers  # registers
from oomguard.operator.kopf_settings import configure_kopf
from oomguard.operator.metrics import OperatorMetrics
from oomguard.operator.options import OperatorOptions
from oomguard.operator.reconcile_writer import ObservedReserve
from oomguard.operator.reconciler import ClusterSnapshot, PolicyEntry, Reconciler
from oomguard.operator.reserve_api import KubernetesReserveApi
from oomguard.operator.resolution.cluster_resolution import NodeFacts
from oomguard.operator.resolution.policy import parse_policy
from oomguard.operator.resolution.reconcile_plan import (
    ActualReserve,
)
from oomguard.operator.service_account_login import login_with_service_account
from oomguard.wire.crd import GROUP, POLICY_PLURAL, RESERVE_PLURAL, VERSION
from oomguard.wire.sizes import SizeError, parse_size

logger = logging.getLogger(__name__)

NODES = ("v1", "nodes")
POLICIES = (GROUP, VERSION, POLICY_PLURAL)
RESERVES = (GROUP, VERSION, RESERVE_PLURAL)


def node_memory_bytes(status: Mapping[str, Any]) -> int | None:
    memory = ((status or {}).get("capacity") or {}).get("memory")
    if memory is None:
        return None
    try:
        return parse_size(str(memory))
    except SizeError:
        logger.warning("node reports an unreadable memory capacity %r", memory)
        return None


# ------------------------------------------------------------------ indices (kopf keeps them)


# Indices are coroutines on purpose: kopf runs plain functions in its thread pool, a thread hop
# per watch event (10,000s at start on a large cluster) for a few dict look-ups.


@kopf.index(*NODES)
async def oomguard_nodes(
    name: str, uid: str, labels: Mapping[str, str], status: Mapping[str, Any], **_: Any
) -> dict[str, NodeFacts]:
    return {name: NodeFacts(name, uid, dict(labels), node_memory_bytes(status))}


@kopf.index(*POLICIES)
async def oomguard_policies(body: kopf.Body, name: str, **_: Any) -> dict[str, PolicyEntry]:
    generation = int(body.get("metadata", {}).get("generation") or 0)
    plain = {"metadata": dict(body.metadata), "spec": dict(body.spec)}
    return {name: PolicyEntry(parse_policy(plain), generation, _plain(body.get("status") or {}))}


@kopf.index(*RESERVES)
async def oomguard_reserves(body: kopf.Body, name: str, **_: Any) -> dict[str, ObservedReserve]:
    owners = body.metadata.get("ownerReferences") or []
    owner_uid = next((o.get("uid") for o in owners if o.get("kind") == "Node"), None)
    reserve = ActualReserve(name, _plain(body.get("spec") or {}), owner_uid)
    return {name: ObservedReserve(reserve, str(body.metadata.get("resourceVersion")))}


def _plain(value: Any) -> Any:
    """kopf bodies are live views; indices must hold frozen plain copies."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _single(index: kopf.Index[str, Any]) -> dict[str, Any]:
    return {key: value for key, store in index.items() for value in store}


# ------------------------------------------------------------------ lifetime


class _Running:
    reconciler: Reconciler | None = None
    task: asyncio.Task[None] | None = None


_running = _Running()


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    # kopf passes the (still empty) indices by their function names; they fill in place.
    nodes: kopf.Index[str, NodeFacts] = kwargs["oomguard_nodes"]
    policies: kopf.Index[str, PolicyEntry] = kwargs["oomguard_policies"]
    reserves: kopf.Index[str, ObservedReserve] = kwargs["oomguard_reserves"]
    options = memo.get("options") or OperatorOptions.from_env()
    configure_kopf(settings, options)
    metrics: OperatorMetrics = memo.get("metrics") or OperatorMetrics()
    memo["metrics"] = metrics
    if options.metrics_port:
        metrics.serve(options.metrics_port)

    def snapshot() -> ClusterSnapshot:
        return ClusterSnapshot(
            nodes=_single(nodes),
            policies=_single(policies),
            reserves=_single(reserves),
        )

    api = KubernetesReserveApi(_api_client(pool_size=options.write_concurrency))
    reconciler = Reconciler(snapshot, api, options, metrics)
    _running.reconciler = reconciler
    memo["reconciler"] = reconciler
    _running.task = asyncio.create_task(reconciler.run(), name="oomguard-reconciler")


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod: the service account at $KUBERNETES_SERVICE_HOST (no cluster DNS needed);
    elsewhere: $KUBECONFIG as it is now (read per call)."""
    return login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.cleanup()
async def stop(**_: Any) -> None:
    task, reconciler = _running.task, _running.reconciler
    _running.task, _running.reconciler = None, None
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if reconciler is not None:
        reconciler.close()


def _api_client(pool_size: int | None = None) -> ApiClient:
    """``pool_size``: connections kept open, at least one per thread writing at once (the
    client's default is five per CPU; a smaller pool opens a new TLS connection per call)."""
    try:
        kube_config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kube_config.ConfigException:
        # The client reads $KUBECONFIG once at import; read it now (tests set it later).
        kube_config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))  # type: ignore[no-untyped-call]
    configuration = Configuration.get_default_copy()
    if pool_size is not None:
        configuration.connection_pool_maxsize = max(
            configuration.connection_pool_maxsize, pool_size
        )
    return ApiClient(configuration)


# ------------------------------------------------------------------ events -> reconcile requests


def _request(trigger: str) -> None:
    if _running.reconciler is not None:
        _running.reconciler.request(trigger)


_seen_nodes: dict[str, NodeFacts] = {}


@kopf.on.event(*NODES)
async def node_changed(
    type: str | None,
    name: str,
    uid: str,
    labels: Mapping[str, str],
    status: Mapping[str, Any],
    **_: Any,
) -> None:
    """Only labels, memory capacity and identity matter: status heartbeats request nothing."""
    if type == "DELETED":
        _seen_nodes.pop(name, None)
        _request("node")
        return
    facts = NodeFacts(name, uid, dict(labels), node_memory_bytes(status))
    if _seen_nodes.get(name) != facts:
        _seen_nodes[name] = facts
        _request("node")


@kopf.on.event(*POLICIES)
async def policy_changed(type: str | None, **_: Any) -> None:
    _request("policy")


@kopf.on.event(*RESERVES)
async def reserve_changed(type: str | None, **_: Any) -> None:
    _request("reserve")


@kopf.on.probe(id="reconciler")
def reconciler_probe(**_: Any) -> dict[str, Any]:
    reconciler = _running.reconciler
    if reconciler is None or reconciler.last_reconcile_at is None:
        return {"last_reconcile_seconds_ago": None}
    return {"last_reconcile_seconds_ago": round(time.monotonic() - reconciler.last_reconcile_at, 1)}
