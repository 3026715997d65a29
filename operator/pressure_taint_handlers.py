"""kopf registrations for the memory-pressure taint, and its reconcile loop.

Two indices (nodes carrying our taint; every NodeMemoryReserve's pressure report) feed one
loop that adds and removes ``oomguard.io/memory-pressure:NoSchedule`` as
``resolution/pressure_taint.py`` decides. Events only request a reconcile; the loop also
runs when a kept taint's report goes stale (``TaintPlan.recheck_at``) and every resync. The
first reconcile after start removes every taint no report justifies any more. On shutdown
the operator removes its taints (a restarting operator puts back the ones still wanted).
Imported by ``handlers`` so that every way of running the operator registers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from oomguard.operator.kube_client import api_client
from oomguard.operator.metrics import OperatorMetrics
from oomguard.operator.node_taint_api import KubernetesNodeTaintApi, NodeTaintApi
from oomguard.operator.options import OperatorOptions
from oomguard.operator.resolution.pressure_taint import (
    ReservePressure,
    TaintPlan,
    TaintRules,
    has_taint,
    plan_taints,
    reserve_pressure,
)
from oomguard.wire.crd import GROUP, RESERVE_PLURAL, VERSION

logger = logging.getLogger(__name__)

NODES = ("v1", "nodes")
RESERVES = (GROUP, VERSION, RESERVE_PLURAL)
SHUTDOWN_SECONDS = 10.0  # removing our taints on the way out must not hold the pod up


def taint_rules(options: OperatorOptions) -> TaintRules:
    return TaintRules(
        enabled=options.pressure_taint,
        heartbeat_seconds=options.pressure_taint_heartbeat_seconds,
        max_age_seconds=options.pressure_taint_max_age_seconds,
    )


class PressureTaints:
    """The loop: plan from the indices, write what differs (idempotently), sleep until the
    next request, the plan's recheck time or the resync."""

    def __init__(
        self,
        tainted: Callable[[], set[str]],
        pressures: Callable[[], Mapping[str, ReservePressure]],
        api: NodeTaintApi,
        rules: TaintRules,
        metrics: OperatorMetrics,
        resync_seconds: float,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._tainted = tainted
        self._pressures = pressures
        self._api = api
        self.rules = rules
        self._metrics = metrics
        self._resync = resync_seconds
        self._wall_clock = wall_clock
        self._wake = asyncio.Event()
        self._ready = False
        self.reconciled = False

    def request(self) -> None:
        """Called from kopf handlers, which run once the indices hold their first listing."""
        self._ready = True
        self._wake.set()

    async def run(self) -> None:
        wait = self._resync
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            if not self._ready:
                continue
            self._wake.clear()
            try:
                plan, failed = await self.reconcile()
            except Exception:
                logger.exception("memory-pressure taint reconcile failed; retrying in 2 s")
                wait = 2.0
                continue
            wait = self._resync
            if plan.recheck_at is not None:
                until = (plan.recheck_at - self._wall_clock()).total_seconds() + 1.0
                wait = max(1.0, min(wait, until))
            if failed:
                wait = min(wait, 2.0)

    async def reconcile(self) -> tuple[TaintPlan, int]:
        plan = plan_taints(self._tainted(), self._pressures(), self._wall_clock(), self.rules)
        failed = 0
        for node in plan.add:
            failed += not await self._write(node, True, "pressure")
        for node, why in plan.remove:
            failed += not await self._write(node, False, why.value)
        self.reconciled = True
        return plan, failed

    async def remove_all(self) -> None:
        """Every taint of ours off every Node (shutdown)."""
        nodes = await asyncio.to_thread(self._api.tainted_nodes)
        for node in nodes:
            await self._write(node, False, "operator-stopping")

    async def _write(self, node: str, wanted: bool, why: str) -> bool:
        verb = "taint" if wanted else "untaint"
        try:
            changed = await asyncio.to_thread(self._api.set_taint, node, wanted)
        except ApiException as exc:
            self._metrics.write_errors.labels(kind="Node", verb=verb).inc()
            logger.warning("%s node %s failed: %s %s", verb, node, exc.status, exc.reason)
            return False
        if changed:
            self._metrics.writes.labels(kind="Node", verb=verb).inc()
            logger.info("%s node %s (oomguard.io/memory-pressure): %s", verb, node, why)
        return True


# ------------------------------------------------------------------ indices


# Coroutines, as the reconciler's indices (handlers.py): kopf runs a plain function in its
# thread pool, a thread hop per watch event.


@kopf.index(*NODES)
async def oomguard_pressure_tainted(
    name: str, spec: Mapping[str, Any], **_: Any
) -> dict[str, bool]:
    """Only the nodes carrying our taint: a small index on a large fleet."""
    return {name: True} if has_taint((spec or {}).get("taints")) else {}


@kopf.index(*RESERVES)
async def oomguard_reserve_pressure(
    name: str, status: Mapping[str, Any], **_: Any
) -> dict[str, ReservePressure]:
    return {name: reserve_pressure(status)}


# ------------------------------------------------------------------ lifetime


class _Running:
    taints: PressureTaints | None = None
    task: asyncio.Task[None] | None = None


running = _Running()


@kopf.on.startup()
async def start_pressure_taints(memo: kopf.Memo, **kwargs: Any) -> None:
    options: OperatorOptions = memo.get("options") or OperatorOptions.from_env()
    if not options.pressure_taint:
        logger.info("memory-pressure taint turned off: Nodes are left alone")
        return
    _seen_taints.clear()
    _seen_pressure.clear()
    tainted: kopf.Index[str, bool] = kwargs["oomguard_pressure_tainted"]
    pressures: kopf.Index[str, ReservePressure] = kwargs["oomguard_reserve_pressure"]
    metrics: OperatorMetrics = memo.get("metrics") or OperatorMetrics()
    memo["metrics"] = metrics
    taints = PressureTaints(
        lambda: set(tainted.keys()),
        lambda: {key: value for key, store in pressures.items() for value in store},
        KubernetesNodeTaintApi(api_client()),
        taint_rules(options),
        metrics,
        options.resync_seconds,
    )
    running.taints = taints
    running.task = asyncio.create_task(taints.run(), name="oomguard-pressure-taints")


@kopf.on.cleanup()
async def stop_pressure_taints(**_: Any) -> None:
    taints, task = running.taints, running.task
    running.taints, running.task = None, None
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    # Only a replica that was active removes taints: a standby never placed any.
    if taints is not None and taints.reconciled:
        try:
            await asyncio.wait_for(taints.remove_all(), SHUTDOWN_SECONDS)
        except (TimeoutError, ApiException) as exc:
            logger.warning("memory-pressure taints may remain after shutdown: %s", exc)


# ------------------------------------------------------------------ events -> requests

# What each object last said; cleared at start, so a new run hears everything again. An
# object not seen before counts as untainted and calm: the thousands of calm Nodes and
# NodeMemoryReserves a large cluster lists (or creates) request nothing, since each request
# plans over every node (a reconcile per event made start-up quadratic in the node count).
_seen_taints: set[str] = set()  # the nodes seen with our taint
_seen_pressure: dict[str, ReservePressure] = {}
CALM = ReservePressure(False, None, None)


def _request() -> None:
    if running.taints is not None:
        running.taints.request()


@kopf.on.event(*NODES)
async def pressure_taint_changed(
    type: str | None, name: str, spec: Mapping[str, Any], **_: Any
) -> None:
    """Only our taint coming or going matters (node heartbeats request nothing)."""
    tainted = type != "DELETED" and has_taint((spec or {}).get("taints"))
    if (name in _seen_taints) != tainted:
        if tainted:
            _seen_taints.add(name)
        else:
            _seen_taints.discard(name)
        _request()


@kopf.on.event(*RESERVES)
async def reserve_pressure_changed(
    type: str | None, name: str, status: Mapping[str, Any], **_: Any
) -> None:
    """Pressure coming or going, and the heartbeat of a node under pressure (it may have
    stopped: ``recheck_at``); calm nodes' refreshes request nothing."""
    pressure = reserve_pressure(status)
    if not pressure.pressure:
        pressure = CALM
    if type == "DELETED":
        if _seen_pressure.pop(name, CALM) != CALM:
            _request()
    elif _seen_pressure.get(name, CALM) != pressure:
        if pressure == CALM:
            _seen_pressure.pop(name, None)
        else:
            _seen_pressure[name] = pressure
        _request()
