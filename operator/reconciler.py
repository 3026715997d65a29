"""One cluster-wide reconcile loop: events only *request* a reconcile; bursts coalesce.

A reconcile resolves every node from a consistent in-memory snapshot (kopf's indices, fed by
watches), writes only the NodeMemoryReserve objects and policy statuses that differ, and runs
again on the next request or after ``resync_seconds``. Because the watch that would show our
own writes lags behind them, the content we last wrote stands in for the watched object until
the watch delivers the same resourceVersion (or ``override_seconds`` pass): so a burst of
events never writes one node twice.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from kubernetes.client.exceptions import ApiException

from oomguard.operator.metrics import OperatorMetrics
from oomguard.operator.options import OperatorOptions
from oomguard.operator.reserve_api import ReserveApi
from oomguard.operator.resolution.cluster_resolution import NodeFacts, resolve_cluster
from oomguard.operator.resolution.policy import InvalidPolicy, Policy
from oomguard.operator.resolution.policy_status import policy_status
from oomguard.operator.resolution.reconcile_plan import (
    ActualReserve,
    ReserveWrite,
    WriteKind,
    plan_writes,
)
from oomguard.wire.times import rfc3339

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(frozen=True)
class PolicyEntry:
    parsed: Policy | InvalidPolicy
    generation: int
    status: Mapping[str, Any]


@dataclass(frozen=True)
class ObservedReserve:
    reserve: ActualReserve
    resource_version: str


@dataclass(frozen=True)
class ClusterSnapshot:
    nodes: Mapping[str, NodeFacts]
    policies: Mapping[str, PolicyEntry]
    reserves: Mapping[str, ObservedReserve]


@dataclass
class _OwnReserveWrite:
    reserve: ActualReserve | None  # None: we deleted it
    resource_version: str | None
    at: float


@dataclass
class _OwnStatusWrite:
    status: Mapping[str, Any]
    at: float


@dataclass
class ReconcileResult:
    writes: list[ReserveWrite] = field(default_factory=list)
    status_writes: list[str] = field(default_factory=list)
    failed: int = 0


class Reconciler:
    def __init__(
        self,
        snapshot: Callable[[], ClusterSnapshot],
        api: ReserveApi,
        options: OperatorOptions,
        metrics: OperatorMetrics,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._snapshot = snapshot
        self._api = api
        self._options = options
        self._metrics = metrics
        self._clock = clock
        self._wall_clock = wall_clock
        self._wake = asyncio.Event()
        self._ready = False
        self._trigger = "event"
        self._own_reserves: dict[str, _OwnReserveWrite] = {}
        self._own_statuses: dict[str, _OwnStatusWrite] = {}
        # The client is synchronous: writes run in threads of their own, as many as may be in
        # flight, so neither the loop's small default executor nor kopf's caps them.
        self._writers = ThreadPoolExecutor(
            max_workers=options.write_concurrency, thread_name_prefix="oomguard-write"
        )
        self.last_reconcile_at: float | None = None

    def close(self) -> None:
        self._writers.shutdown(wait=False, cancel_futures=True)

    async def _call(self, call: Callable[..., _T], *args: Any) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writers, functools.partial(call, *args))

    def request(self, trigger: str = "event") -> None:
        """Ask for a reconcile soon. Called from kopf handlers, which only run once every index
        holds its initial listing, so the first request also marks the snapshot as complete."""
        self._ready = True
        self._trigger = trigger
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self._options.resync_seconds)
                trigger = self._trigger
            except TimeoutError:
                trigger = "resync"
            if not self._ready:
                continue
            if self._options.debounce_seconds:
                await asyncio.sleep(self._options.debounce_seconds)
            self._wake.clear()
            try:
                result = await self.reconcile(trigger)
            except Exception:
                logger.exception("reconcile failed; retrying in 2 s")
                await asyncio.sleep(2)
                self._wake.set()
                continue
            if result.failed:
                asyncio.get_running_loop().call_later(2.0, self.request, "retry")

    async def reconcile(self, trigger: str) -> ReconcileResult:
        started = time.monotonic()
        snapshot = self._snapshot()
        resolution = resolve_cluster(
            snapshot.nodes.values(), [entry.parsed for entry in snapshot.policies.values()]
        )
        actual = self._effective_reserves(snapshot.reserves)
        writes = plan_writes(resolution.desired, resolution.waiting, snapshot.nodes, actual)
        result = ReconcileResult(writes=writes)
        semaphore = asyncio.Semaphore(self._options.write_concurrency)

        async def write_reserve(write: ReserveWrite) -> None:
            async with semaphore:
                if await self._write_reserve(write) is False:
                    result.failed += 1

        async def write_status(name: str, status: Mapping[str, Any]) -> None:
            async with semaphore:
                ok = await self._write_status(name, status)
            if ok:
                result.status_writes.append(name)
            elif ok is False:
                result.failed += 1

        now_text = rfc3339(self._wall_clock())
        statuses: dict[str, Mapping[str, Any]] = {}
        for name, entry in sorted(snapshot.policies.items()):
            current = self._effective_status(name, entry.status)
            desired = policy_status(
                entry.generation,
                resolution.tallies.get(name),
                resolution.invalid.get(name),
                current,
                now_text,
            )
            if desired != current:
                statuses[name] = desired

        # Reserve and status writes share the writers: one round trip's latency each, in
        # parallel, rather than twenty policy statuses one after another per reconcile.
        await asyncio.gather(
            *(write_reserve(write) for write in writes),
            *(write_status(name, status) for name, status in statuses.items()),
        )
        result.status_writes.sort()

        conflicting = set().union(*(t.conflicting for t in resolution.tallies.values()))
        self._metrics.reconciles.labels(trigger=trigger).inc()
        self._metrics.reconcile_seconds.observe(time.monotonic() - started)
        self._metrics.conflicts.set(len(conflicting))
        if conflicting:
            self._metrics.conflicts_seen.inc()
        self._metrics.nodes_governed.set(len(resolution.desired))
        self._metrics.invalid_policies.set(len(resolution.invalid))
        self.last_reconcile_at = self._clock()
        if writes or result.status_writes:
            logger.info(
                "reconcile (%s): %d node(s), %d policies, %d reserve write(s), %d status write(s)",
                trigger,
                len(snapshot.nodes),
                len(snapshot.policies),
                len(writes),
                len(result.status_writes),
            )
        return result

    def _effective_reserves(
        self, observed: Mapping[str, ObservedReserve]
    ) -> dict[str, ActualReserve]:
        now = self._clock()
        actual = {name: seen.reserve for name, seen in observed.items()}
        for name, own in list(self._own_reserves.items()):
            seen = observed.get(name)
            caught_up = (own.reserve is None and seen is None) or (
                seen is not None and seen.resource_version == own.resource_version
            )
            if caught_up or now - own.at > self._options.override_seconds:
                del self._own_reserves[name]
            elif own.reserve is None:
                actual.pop(name, None)
            else:
                actual[name] = own.reserve
        return actual

    def _effective_status(self, name: str, observed: Mapping[str, Any]) -> Mapping[str, Any]:
        own = self._own_statuses.get(name)
        if own is None:
            return observed
        if own.status == observed or self._clock() - own.at > self._options.override_seconds:
            del self._own_statuses[name]
            return observed
        return own.status

    async def _write_reserve(self, write: ReserveWrite) -> bool:
        verb = write.kind.value
        try:
            if write.kind is WriteKind.DELETE:
                await self._call(self._api.delete_reserve, write.name)
                version = None
                written = None
            else:
                assert write.body is not None
                if write.kind is WriteKind.CREATE:
                    version = await self._call(self._api.create_reserve, write.body)
                else:
                    version = await self._call(self._api.update_reserve, write.name, write.body)
                owner = write.body["metadata"]["ownerReferences"][0]["uid"]
                written = ActualReserve(write.name, write.body["spec"], owner)
        except ApiException as exc:
            self._metrics.write_errors.labels(kind="NodeMemoryReserve", verb=verb).inc()
            logger.warning(
                "%s NodeMemoryReserve %s failed: %s %s", verb, write.name, exc.status, exc.reason
            )
            return False
        self._metrics.writes.labels(kind="NodeMemoryReserve", verb=verb).inc()
        self._own_reserves[write.name] = _OwnReserveWrite(written, version, self._clock())
        return True

    async def _write_status(self, name: str, status: Mapping[str, Any]) -> bool | None:
        """True: written; None: the policy is gone; False: failed (retried)."""
        try:
            await self._call(self._api.patch_policy_status, name, status)
        except ApiException as exc:
            if exc.status == 404:
                return None
            self._metrics.write_errors.labels(kind="MemoryReservePolicy", verb="status").inc()
            logger.warning(
                "status of MemoryReservePolicy %s failed: %s %s", name, exc.status, exc.reason
            )
            return False
        self._metrics.writes.labels(kind="MemoryReservePolicy", verb="status").inc()
        self._own_statuses[name] = _OwnStatusWrite(status, self._clock())
        return True
