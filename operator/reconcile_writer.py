"""The operator's writes, as the reconcile loop starts them: NodeMemoryReserves and policy
statuses, through the synchronous client in threads of their own.

What it keeps is what the reconciler must believe about objects the watch has not caught up
with: a write in flight stands in for its object (and a second write of the same object waits
for the first, so per object the writes go out in the order they were planned); a write done
stands in until the watch delivers its resourceVersion or ``override_seconds`` pass. The
queue (writes started whose API call still waits for a thread) is what the loop waits on
before planning again: the next plan overlaps the last round trips of the writes before it,
not their queue, so plans do not pile up behind a slow apiserver (and each plan's policy
statuses are not rewritten for every few nodes).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from kubernetes.client.exceptions import ApiException

from oomguard.operator.metrics import OperatorMetrics
from oomguard.operator.options import OperatorOptions
from oomguard.operator.reserve_api import ReserveApi
from oomguard.operator.resolution.reconcile_plan import ActualReserve, ReserveWrite, WriteKind

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(frozen=True)
class ObservedReserve:
    reserve: ActualReserve
    resource_version: str


@dataclass
class ReconcileResult:
    writes: list[ReserveWrite] = field(default_factory=list)
    status_writes: list[str] = field(default_factory=list)
    failed: int = 0


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
class _Pending(Generic[_T]):
    """A write in flight and what it leaves once done: it stands in for its object."""

    leaves: _T  # a reserve (None: deleted), or a policy's status
    task: asyncio.Task[None]


class ReconcileWriter:
    def __init__(
        self,
        api: ReserveApi,
        options: OperatorOptions,
        metrics: OperatorMetrics,
        clock: Callable[[], float],
    ) -> None:
        self._api = api
        self._options = options
        self._metrics = metrics
        self._clock = clock
        self._own_reserves: dict[str, _OwnReserveWrite] = {}
        self._own_statuses: dict[str, _OwnStatusWrite] = {}
        self._pending_reserves: dict[str, _Pending[ActualReserve | None]] = {}
        self._pending_statuses: dict[str, _Pending[Mapping[str, Any]]] = {}
        self._queued = 0  # writes started whose API call waits for a thread
        self._queue_empty: asyncio.Event | None = None  # the loop's, made by wait_queue_empty
        # The client is synchronous: writes run in threads of their own, as many as may be in
        # flight, so neither the loop's small default executor nor kopf's caps them.
        self._threads = ThreadPoolExecutor(
            max_workers=options.write_concurrency, thread_name_prefix="oomguard-write"
        )

    def close(self) -> None:
        pending = [p.task for p in self._pending_reserves.values()]
        pending += [p.task for p in self._pending_statuses.values()]
        for task in pending:
            task.cancel()
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def wait_queue_empty(self) -> None:
        """Until every write started so far is in a thread (at most ``write_concurrency``)."""
        if self._queue_empty is None:
            self._queue_empty = asyncio.Event()
        while self._queued:
            self._queue_empty.clear()
            await self._queue_empty.wait()

    def start_reserve_write(
        self, write: ReserveWrite, result: ReconcileResult
    ) -> asyncio.Task[None]:
        async def run() -> None:
            if await self._write_reserve(write) is False:
                result.failed += 1

        leaves = None if write.kind is WriteKind.DELETE else _written_reserve(write)
        return self._chained(self._pending_reserves, write.name, leaves, run)

    def start_status_write(
        self, name: str, status: Mapping[str, Any], result: ReconcileResult
    ) -> asyncio.Task[None]:
        async def run() -> None:
            ok = await self._write_status(name, status)
            if ok:
                result.status_writes.append(name)
            elif ok is False:
                result.failed += 1

        return self._chained(self._pending_statuses, name, status, run)

    @staticmethod
    def _chained(
        table: dict[str, _Pending[_T]],
        name: str,
        leaves: _T,
        write: Callable[[], Coroutine[Any, Any, None]],
    ) -> asyncio.Task[None]:
        """Start ``write`` once the object's earlier write is done (per object, the writes go
        out in the order of the plans), standing in for the object until it is done."""
        before = table.get(name)

        async def run() -> None:
            if before is not None:
                await asyncio.wait([before.task])
            await write()

        task = asyncio.create_task(run())
        pending = table[name] = _Pending(leaves, task)

        def forget(_: object) -> None:
            if table.get(name) is pending:
                del table[name]

        task.add_done_callback(forget)
        return task

    def effective_reserves(
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
        for name, pending in self._pending_reserves.items():  # in flight: as good as written
            if pending.leaves is None:
                actual.pop(name, None)
            else:
                actual[name] = pending.leaves
        return actual

    def effective_status(self, name: str, observed: Mapping[str, Any]) -> Mapping[str, Any]:
        pending = self._pending_statuses.get(name)
        if pending is not None:
            return pending.leaves
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
                written = _written_reserve(write)
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

    async def _call(self, call: Callable[..., _T], *args: Any) -> _T:
        """In a writer thread; the executor queues calls beyond ``write_concurrency``, and
        the queue counts them until a thread takes one."""
        loop = asyncio.get_running_loop()
        waiting = [True]

        def taken() -> None:  # in the loop's thread, once per call
            if waiting[0]:
                waiting[0] = False
                self._queued -= 1
                if not self._queued and self._queue_empty is not None:
                    self._queue_empty.set()

        def run() -> _T:
            loop.call_soon_threadsafe(taken)
            return call(*args)

        self._queued += 1
        try:
            return await loop.run_in_executor(self._threads, run)
        finally:
            taken()  # cancelled or refused before a thread took it


def _written_reserve(write: ReserveWrite) -> ActualReserve:
    assert write.body is not None
    owner = write.body["metadata"]["ownerReferences"][0]["uid"]
    return ActualReserve(write.name, write.body["spec"], owner)
