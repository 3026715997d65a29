"""One cluster-wide reconcile loop: events only *request* a reconcile; bursts coalesce.

A reconcile resolves every node from a consistent in-memory snapshot (kopf's indices, fed by
watches), writes only the NodeMemoryReserve objects and policy statuses that differ, and runs
again on the next request or after ``resync_seconds``. The writes it starts, and what stands
in for objects the watch has not caught up with (so a burst of events never writes one node
twice), are ``reconcile_writer.py``'s.

Reconciles are pipelined: the loop plans the next one while the writes of the last are still
going out, instead of waiting for the slowest of them (at 5,000 nodes a round of writes takes
seconds, and the nodes that arrived meanwhile waited for all of it, then for the debounce and
the plan): it plans again once every write before has gone out to a writer thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from oomguard.operator.metrics import OperatorMetrics
from oomguard.operator.options import OperatorOptions
from oomguard.operator.reconcile_writer import ObservedReserve, ReconcileResult, ReconcileWriter
from oomguard.operator.reserve_api import ReserveApi
from oomguard.operator.resolution.cluster_resolution import NodeFacts, resolve_cluster
from oomguard.operator.resolution.policy import InvalidPolicy, Policy
from oomguard.operator.resolution.policy_status import policy_status
from oomguard.operator.resolution.reconcile_plan import plan_writes
from oomguard.wire.times import rfc3339

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PolicyEntry:
    parsed: Policy | InvalidPolicy
    generation: int
    status: Mapping[str, Any]


@dataclass(frozen=True)
class ClusterSnapshot:
    nodes: Mapping[str, NodeFacts]
    policies: Mapping[str, PolicyEntry]
    reserves: Mapping[str, ObservedReserve]


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
        self._writer = ReconcileWriter(api, options, metrics, clock)
        self._settling: set[asyncio.Task[None]] = set()
        self.last_reconcile_at: float | None = None

    def close(self) -> None:
        for task in self._settling:
            task.cancel()
        self._writer.close()

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
            # The debounce and the queue draining overlap: the plan starts as the writes
            # before it are all out, not after the slowest of them came back.
            await asyncio.gather(
                asyncio.sleep(self._options.debounce_seconds), self._writer.wait_queue_empty()
            )
            self._wake.clear()
            try:
                writes = self._start(trigger)
            except Exception:
                logger.exception("reconcile failed; retrying in 2 s")
                await asyncio.sleep(2)
                self._wake.set()
                continue
            settling = asyncio.create_task(self._settle(writes), name="oomguard-reconcile")
            self._settling.add(settling)
            settling.add_done_callback(self._settling.discard)

    async def _settle(self, writes: _Writes) -> None:
        result = await writes.done()
        if result.failed:
            asyncio.get_running_loop().call_later(2.0, self.request, "retry")

    async def reconcile(self, trigger: str) -> ReconcileResult:
        """Plan, write, and return once every write of this reconcile is done."""
        return await self._start(trigger).done()

    def _start(self, trigger: str) -> _Writes:
        """Plan from the snapshot and start the writes (no await: one consistent plan)."""
        started = time.monotonic()
        snapshot = self._snapshot()
        resolution = resolve_cluster(
            snapshot.nodes.values(), [entry.parsed for entry in snapshot.policies.values()]
        )
        actual = self._writer.effective_reserves(snapshot.reserves)
        writes = plan_writes(resolution.desired, resolution.waiting, snapshot.nodes, actual)
        result = ReconcileResult(writes=writes)

        now_text = rfc3339(self._wall_clock())
        statuses: dict[str, Mapping[str, Any]] = {}
        for name, entry in sorted(snapshot.policies.items()):
            current = self._writer.effective_status(name, entry.status)
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
        writer = self._writer
        tasks = [writer.start_reserve_write(write, result) for write in writes]
        tasks += [writer.start_status_write(n, status, result) for n, status in statuses.items()]

        conflicting = set().union(*(t.conflicting for t in resolution.tallies.values()))
        self._metrics.reconciles.labels(trigger=trigger).inc()
        self._metrics.conflicts.set(len(conflicting))
        if conflicting:
            self._metrics.conflicts_seen.inc()
        self._metrics.nodes_governed.set(len(resolution.desired))
        self._metrics.invalid_policies.set(len(resolution.invalid))
        self.last_reconcile_at = self._clock()
        sizes = (len(snapshot.nodes), len(snapshot.policies))
        return _Writes(self._metrics, trigger, started, sizes, result, tasks)


class _Writes:
    """The writes one reconcile started, and what is said about them once all are done."""

    def __init__(
        self,
        metrics: OperatorMetrics,
        trigger: str,
        started: float,
        sizes: tuple[int, int],  # nodes and policies in the snapshot
        result: ReconcileResult,
        tasks: list[asyncio.Task[None]],
    ) -> None:
        self._metrics = metrics
        self._trigger, self._started = trigger, started
        self._nodes, self._policies = sizes
        self._result, self._tasks = result, tasks

    async def done(self) -> ReconcileResult:
        await asyncio.gather(*self._tasks)
        result = self._result
        result.status_writes.sort()
        self._metrics.reconcile_seconds.observe(time.monotonic() - self._started)
        if result.writes or result.status_writes:
            logger.info(
                "reconcile (%s): %d node(s), %d policies, %d reserve write(s), %d status write(s)",
                self._trigger,
                self._nodes,
                self._policies,
                len(result.writes),
                len(result.status_writes),
            )
        return result
