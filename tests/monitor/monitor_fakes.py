"""Fakes the monitor tests share: plain-file cgroups, a guard's cgroup and target, a node's
pods, eviction API and evictor, a settable clock, polling for a condition, and a poller that records
the timeouts a wait passed.

One place for them, so a change to what the loops need from their collaborators is made
once. Tests import them as ``from monitor_fakes import ...`` (``tests/monitor/conftest.py``
puts this folder on the path, as ``tests/conftest.py`` does for ``k8s_helpers``).
"""

import select
import socket
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

from oomguard.monitor.actions.pod_evictor import PodEvictor
from oomguard.monitor.decision.rate_limit import TokenBucket
from oomguard.monitor.kernel.cgroupfs import Cgroup
from oomguard.monitor.kube.pod_candidates import PodInfo
from oomguard.monitor.kube.pod_cgroups import QosClass
from oomguard.monitor.triggers.kinds.event import EVENT, EventConfig
from oomguard.monitor.triggers.kinds.host_memory import HOST_MEMORY
from oomguard.monitor.triggers.kinds.pressure import PRESSURE
from oomguard.monitor.triggers.kinds.threshold import THRESHOLD
from oomguard.monitor.triggers.monitor_config import MonitorConfig

MI = 2**20


def monitor_config(
    event=True, threshold=None, pressure=None, host_memory=None, event_counters=None
):
    """A ``MonitorConfig`` of the four kinds there are, spelled as tests wrote it when each
    kind was a field: ``event`` on or off, the others' configs or None."""
    runs = [EVENT.run(EventConfig(event_counters))] if event else []
    runs += [
        kind.run(config)
        for kind, config in [
            (THRESHOLD, threshold),
            (PRESSURE, pressure),
            (HOST_MEMORY, host_memory),
        ]
        if config is not None
    ]
    return MonitorConfig(*runs)


MEMORY_EVENTS = b"low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n"

FAKE_FILES = {
    "cgroup.controllers": b"cpu io memory pids\n",
    "cgroup.subtree_control": b"",
    "cgroup.procs": b"",
    "cgroup.events": b"populated 0\nfrozen 0\n",
    "cgroup.kill": b"",
    "memory.current": b"104857600\n",
    "memory.stat": b"anon 83886080\nfile 20971520\nactive_file 1048576\ninactive_file 19922944\n",
    "memory.events": MEMORY_EVENTS,
    "memory.events.local": MEMORY_EVENTS,
    "memory.high": b"max\n",
    "memory.max": b"max\n",
    "memory.pressure": (
        b"some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
        b"full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
    ),
}


def write_fake_cgroup(path: Path) -> Cgroup:
    """A directory that looks like a cgroup v2 memory cgroup: plain files."""
    path.mkdir(parents=True, exist_ok=True)
    for name, data in FAKE_FILES.items():
        (path / name).write_bytes(data)
    return Cgroup(path)


def wait_for(predicate, timeout=60.0):
    """True as soon as ``predicate()`` is; False when ``timeout`` seconds passed first (a
    generous bound: it costs nothing when the condition holds, and a loaded machine is slow)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def free_port():
    """A loopback port nothing listens on now (the kernel's pick for a bound socket)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RecordingPoller:
    """``select.poll`` that keeps every timeout it was given: a wait with no timeout sleeps
    until the kernel wakes it, which is what the idle tests prove."""

    def __init__(self) -> None:
        self._poll = select.poll()
        self.registered: set[int] = set()
        self.timeouts: list[float | None] = []

    def register(self, fd: int, eventmask: int = select.POLLIN) -> None:
        self.registered.add(fd)
        self._poll.register(fd, eventmask)

    def unregister(self, fd: int) -> None:
        self.registered.discard(fd)
        self._poll.unregister(fd)

    def poll(self, timeout: float | None = None) -> list[tuple[int, int]]:
        self.timeouts.append(timeout)
        return self._poll.poll(timeout)


# -- plain-file cgroups -------------------------------------------------------------------

EVENTS_LINE = "low 0\nhigh {high}\nmax 0\noom 0\noom_kill 0\n"
IDLE_PRESSURE = (
    "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
    "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
)


def write_cgroup(
    path: Path,
    current: int,
    high="max",
    maximum="max",
    *,
    events_high: int | None = None,
    kill_file: bool = False,
    populated: bool | None = None,
    pressure: bool = False,
) -> Path:
    """A directory with the memory files a cgroup v2 memory cgroup has (working set =
    ``current``: no inactive file pages). Optional files only when asked for, so each test
    sees exactly the tree it describes: ``memory.events`` with ``high`` at ``events_high``,
    ``cgroup.kill``, ``cgroup.events``, an idle ``memory.pressure``."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "memory.current").write_text(f"{current}\n")
    (path / "memory.stat").write_text("anon 0\ninactive_file 0\nactive_file 0\n")
    (path / "memory.high").write_text(f"{high}\n")
    (path / "memory.max").write_text(f"{maximum}\n")
    if events_high is not None:
        (path / "memory.events").write_text(EVENTS_LINE.format(high=events_high))
    if pressure:
        (path / "memory.pressure").write_text(IDLE_PRESSURE)
    if kill_file:
        (path / "cgroup.kill").write_text("")
    if populated is not None:
        (path / "cgroup.events").write_text(f"populated {int(populated)}\nfrozen 0\n")
    return path


# -- the process guard's collaborators ----------------------------------------------------


class FakeCgroup:
    """A guarded cgroup whose working set is whatever the test says."""

    def __init__(self, usage):
        self.usage = usage
        self.path = "/fake"

    def working_set(self):
        return self.usage


class FakeTarget:
    """Processes hold memory; stopping removes them and their memory from the cgroup."""

    def __init__(self, cgroup, procs):
        self.cgroup = cgroup
        self.procs = {c.id: c for c in procs}
        self.stopped = []

    def candidates(self):
        return list(self.procs.values())

    def listing(self):
        """Who is there, without memory (as ProcessTarget lists them)."""
        self.listed = getattr(self, "listed", 0) + 1
        return [replace(c, memory_bytes=0) for c in self.procs.values()]

    def measure(self, listed):
        self.measured = getattr(self, "measured", 0) + len(listed)
        return [self.procs[c.id] for c in listed if c.id in self.procs]

    def stop(self, victims, detected_at):
        self.stopped.append(([v.id for v in victims], detected_at))
        for v in victims:
            del self.procs[v.id]
            self.cgroup.usage -= v.memory_bytes


# -- the node agent's collaborators -------------------------------------------------------


class Pods:
    """The pod watch: a fixed set of pods, listed and connected; counts relists asked for."""

    def __init__(self, pods=()):
        self.pods = {p.uid: p for p in pods}
        self.connected = True
        self.synced = threading.Event()
        self.synced.set()
        self.relists_asked = 0

    def snapshot(self):
        return dict(self.pods)

    def request_relist(self):
        self.relists_asked += 1


class Api:
    """The Eviction API: answers a status per pod name (201 unless told; an exception is
    raised) and records which pods were asked for."""

    def __init__(self, statuses=None):
        self.statuses = statuses or {}
        self.calls = []

    def evict(self, namespace, name, grace, uid=None):
        self.calls.append(name)
        answer = self.statuses.get(name, 201)
        if isinstance(answer, Exception):
            raise answer
        return answer


def fake_evictor(api=None, *, clock=None, sleep=lambda seconds: None, **kwargs):
    """The node agent's PodEvictor over a fake Eviction API (``Api()`` unless given): 10
    evictions a minute, no Events, and a backoff that returns at once. ``clock``: the
    evictor's clock (its own monotonic one unless given)."""
    if clock is not None:
        kwargs["clock"] = clock
    return PodEvictor(
        Api() if api is None else api,
        None,
        TokenBucket(per_minute=10, burst=10, now=0.0),
        sleep=sleep,
        **kwargs,
    )


def pod(name, started, qos=QosClass.BURSTABLE, **kw):
    """A running pod on node-a in namespace apps, its uid derived from its name."""
    return PodInfo(
        uid=str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
        namespace="apps",
        name=name,
        node_name="node-a",
        qos=qos,
        started_at=started,
        has_start_time=True,
        **kw,
    )


class Clock:
    """A monotonic clock that moves only when the test sets ``now``."""

    def __init__(self, now=100.0):
        self.now = now

    def __call__(self):
        return self.now
