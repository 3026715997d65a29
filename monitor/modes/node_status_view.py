"""The node agent's ``/status`` JSON and its ``NodeMemoryReserve.status`` report, read from
the agent's units under the agent's lock (the kernel counters for the report are read after
it). What the documents say is in ``node_status.py`` (pure); this only gathers the values."""

from __future__ import annotations

import threading
from typing import Any, Protocol

from oomguard.monitor.decision.memory_pressure import PressureState
from oomguard.monitor.kernel.cgroupfs import Cgroup
from oomguard.monitor.kube.node_reserve import ReserveReport
from oomguard.monitor.kube.pod_candidates import ProtectionRules
from oomguard.monitor.modes.kubepods_limit import KubepodsLimit
from oomguard.monitor.modes.monitor_supervisor import MonitorSupervisor
from oomguard.monitor.modes.node_evictions import NodeEvictions
from oomguard.monitor.modes.node_look import NodeLook
from oomguard.monitor.modes.node_measurer import PodSnapshots
from oomguard.monitor.modes.node_options import AgentOptions
from oomguard.monitor.modes.node_status import degraded, reserve_report, status_json
from oomguard.monitor.modes.pod_view_keeper import PodViewKeeper
from oomguard.monitor.modes.reserve_keeper import ReserveKeeper


class StatusSource(Protocol):
    """What the view reads of the node agent."""

    @property
    def options(self) -> AgentOptions: ...

    kubepods: Cgroup
    limit: KubepodsLimit
    reserve: ReserveKeeper
    look: NodeLook
    monitors: MonitorSupervisor
    evictions: NodeEvictions
    pods: PodSnapshots
    pod_view: PodViewKeeper
    errors: list[str]

    @property
    def pressure(self) -> PressureState: ...

    def rules(self) -> ProtectionRules: ...

    def target_bytes(self) -> int: ...


class NodeStatusView:
    def __init__(self, agent: StatusSource, lock: threading.Lock) -> None:
        self._agent = agent
        self._lock = lock

    def status(self) -> dict[str, Any]:
        """The ``/status`` JSON."""
        a = self._agent
        with self._lock:
            settings, high = a.reserve.settings, a.limit.high
            return status_json(
                settings,
                a.reserve.state,
                str(a.kubepods.path),
                a.options.kubepods.driver.value,
                high.bytes if high is not None else None,
                a.limit.writes(settings),
                a.target_bytes() if high is not None else None,
                a.look.last,
                a.rules(),
                a.monitors.status(),
                a.pods.connected,
                a.evictions.counters,
                a.errors,
                a.evictions.last_decision,
            ) | {"pod_view": a.pod_view.status(a.look.last)}

    def report(self) -> ReserveReport | None:
        """What ``NodeMemoryReserve.status`` should say now; None before the first reserve
        state (nothing to report into yet)."""
        a = self._agent
        with self._lock:
            state, high, m, options = a.reserve.state, a.limit.high, a.look.last, a.options
            writes = a.limit.writes(a.reserve.settings)
            problem = degraded(
                options.set_memory_high, a.look.error, a.monitors.failures, a.reserve.refused
            )
            last = a.evictions.last_decision
            pressure = a.pressure
            cooldown = a.reserve.settings.eviction.pressure_cooldown_seconds
        if state is None:
            return None
        events, maximum = a.limit.kernel_counters()
        applied = high.bytes if high is not None and writes else None
        usage = m.usage if m is not None else 0
        cgroup = str(options.kubepods.path)
        return reserve_report(
            state, cgroup, applied, maximum, usage, events, problem, last, pressure, cooldown
        )
