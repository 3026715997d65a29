"""The sidecar's workload cgroup split in two leaves, ``oomguard-main`` and
``oomguard-workers`` (cgroup v2's no-internal-process rule: once memory is enabled for its
children, the workload cgroup itself may hold no process), and the sweep that moves newly
started workers (born in the main leaf, their parent's cgroup) over. Undone on the way out."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

from oomguard.monitor.feedback.logs import log_event
from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupError, CgroupGone
from oomguard.monitor.kernel.procfs import ProcReader
from oomguard.monitor.modes.sidecar_layout import (
    MAIN_LEAF,
    WORKERS_LEAF,
    ProcessFacts,
    WorkerSelector,
)
from oomguard.monitor.runtime.stop_signal import StopSignal

log = logging.getLogger("oomguard.sidecar")

SPLIT_ATTEMPTS = 50  # a fork can land in the workload cgroup between our moves: try again


class MoveRefused(CgroupError):
    """The kernel refused to move a live process: most often cgroup2's ``nsdelegate`` with
    the sidecar in its own cgroup namespace. The message says what the pod spec must say."""


class WorkersSplit:
    """The workload cgroup split into a main leaf and a workers leaf; ``sweep`` moves new
    workers over. Thread-safe enough: ``sweep`` runs in one thread only."""

    def __init__(self, workload: Cgroup, selector: WorkerSelector, reader: ProcReader) -> None:
        self.workload = workload
        self.main = workload.child(MAIN_LEAF)
        self.workers = workload.child(WORKERS_LEAF)
        self.selector = selector
        self.reader = reader
        self.main_pid: int | None = None
        self.moved = 0

    def _facts(self, pid: int) -> ProcessFacts | None:
        info = self.reader.read(pid)
        if info is None:
            return None
        return ProcessFacts(pid, info.started_at, " ".join(info.cmdline))

    def setup(self) -> None:
        self.main.create(exist_ok=True)
        self.workers.create(exist_ok=True)
        facts = [f for f in map(self._facts, self.workload.pids()) if f is not None]
        self.main_pid = self.selector.choose_main(facts)
        for _ in range(SPLIT_ATTEMPTS):
            self._move_out_of(self.workload)
            try:
                self.workload.enable_memory_for_children()
                return
            except CgroupError:
                if not self.workload.pids():
                    raise
                time.sleep(0.01)  # a fork landed meanwhile
        raise CgroupError(f"{self.workload.path} keeps getting new processes; cannot split it")

    def _move_out_of(self, source: Cgroup) -> None:
        for pid in source.pids():
            facts = self._facts(pid)
            if facts is None:
                continue
            worker = self.selector.is_worker(facts, self.main_pid)
            destination = self.workers if worker else self.main
            if destination == source:
                continue
            try:
                destination.add_process(pid)
            except CgroupError as exc:
                if self.reader.stat(pid) is None:
                    continue  # exited meanwhile
                raise MoveRefused(
                    f"{exc}: the kernel refused to move process {pid}. Where cgroup2 is "
                    "mounted with nsdelegate (systemd does), a container in its own cgroup "
                    "namespace cannot move another container's processes: run the sidecar "
                    "privileged, which puts it in the host's cgroup namespace (docs/sidecar.md)"
                ) from exc
            if worker:
                self.moved += 1
                log_event(log, logging.DEBUG, "worker moved", pid=pid, cmdline=facts.cmdline[:200])

    def sweep(self) -> None:
        """New workers are born in the main leaf (their parent's cgroup): move them."""
        self._move_out_of(self.main)

    def undo(self) -> None:
        """Back as found: memory off for the children, every process home, leaves removed."""
        with contextlib.suppress(CgroupError):
            self.workload.write("cgroup.subtree_control", b"-memory")
        for leaf in (self.workers, self.main):
            for _ in range(SPLIT_ATTEMPTS):
                try:
                    pids = leaf.pids()
                except CgroupError:  # gone, or unreadable: the other leaf is still undone
                    break
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(CgroupError):
                        self.workload.add_process(pid)
            with contextlib.suppress(CgroupError):
                leaf.remove()


@contextlib.contextmanager
def workers_split(split: WorkersSplit) -> Iterator[WorkersSplit]:
    try:
        split.setup()
        yield split
    finally:
        split.undo()


def sweep_until_stopped(
    split: WorkersSplit, stop: StopSignal, interval: float, errors: list[str]
) -> None:
    while not stop.wait(interval):
        try:
            split.sweep()
        except CgroupGone:
            # the runtime removes a container's cgroup when it ends: the app is done, and
            # so is the guarding of its workers; an end, not an error
            log_event(
                log, logging.INFO, "the workload container ended", cgroup=str(split.workload.path)
            )
            stop.set()
            return
        except CgroupError as exc:
            errors.append(str(exc))
