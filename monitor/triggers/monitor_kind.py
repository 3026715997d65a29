"""What every kind of monitor declares, in one place (one file per kind under ``kinds/``).

A kind is one class: its settings section (``oomguard.wire.monitor_sections``: spec key,
knobs, defaults, ranges), the kind of trigger it sends, when each mode runs it and with what
runtime config (pure), and how it is built. ``monitor_registry.MONITOR_KINDS`` lists the kinds
once; the node agent's plan, the guard's config, ``build_monitors``, the names in ``/status``
and the metrics label all iterate that list instead of naming kinds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from oomguard.monitor.kernel.cgroupfs import Cgroup
from oomguard.monitor.triggers.trigger import Monitor, TriggerKind
from oomguard.wire.monitor_settings import MonitorSection, MonitorSettings, SpecSection

S = TypeVar("S", bound=SpecSection)  # the kind's settings section
C = TypeVar("C")  # the kind's runtime config (a frozen dataclass: compared, logged)


@dataclass(frozen=True)
class NodeFacts:
    """What the node agent knows besides the settings when it plans its monitors."""

    target_bytes: int  # the line the decision brings kubepods' working set back under
    memory_high_set: bool  # False: dry run, or a kernel older than 5.9
    pressure_available: bool = True  # kubepods has memory.pressure (PSI on)
    node_memory_bytes: int = 0  # the node's memory (0: not known)


@dataclass(frozen=True)
class GuardFacts:
    """What ``oomguard guard`` (and the sidecar) ask of their monitors."""

    asked: frozenset[str]  # the monitors turned on, by name (``--monitors``)
    memory_high: int
    interval_s: float  # how often a polling monitor polls (``--threshold-interval``)
    # False: no memory.high is written (dry run, --no-memory-high, a sidecar that only
    # watches), so there is no line for an event to cross
    memory_high_set: bool = True


@dataclass(frozen=True)
class Off:
    """A kind the settings ask for that cannot run here; ``note`` says why (None: nothing
    worth saying, e.g. a line that cannot be computed yet)."""

    note: str | None = None


@dataclass(frozen=True)
class KindRun:
    """One kind's runtime config, tagged with the kind's name (see ``MonitorKind.run``)."""

    name: str
    config: Any


class MonitorKind(ABC, Generic[S, C]):
    """One kind of monitor. Subclasses set the class attributes and the two rules; the
    defaults say: no old-kernel role, no tick needed, not offered by ``oomguard guard``."""

    section: ClassVar[MonitorSection[Any]]
    trigger: ClassVar[TriggerKind]
    polls: ClassVar[bool] = False  # its check runs on the node agent's tick, which must run
    # roles on a node without memory.high (kernel < 5.9 or dry run); see modes/node_monitors.py
    guards_without_memory_high: ClassVar[bool] = False  # runs even when disabled
    stands_in_for: ClassVar[MonitorSection[Any] | None] = None  # runs when that one is asked
    last_resort: ClassVar[bool] = False  # runs when nothing that stands alone can

    @property
    def name(self) -> str:
        return self.section.key

    def settings(self, settings: MonitorSettings) -> S:
        """This kind's section of ``MonitorSettings``, typed."""
        found: S = settings[self.section]
        return found

    @abstractmethod
    def node_config(self, settings: S, facts: NodeFacts) -> C | Off:
        """The node agent's config for this kind, once the settings (or an old-kernel role)
        asked for it; ``Off`` when it cannot run here."""

    def guard_config(self, facts: GuardFacts) -> C | None:
        """The process guard's config for this kind, None when it does not run there."""
        return None

    @property
    def in_guard(self) -> bool:
        """Whether ``oomguard guard --monitors`` offers this kind."""
        return type(self).guard_config is not MonitorKind.guard_config

    @abstractmethod
    def build(self, cgroup: Cgroup, config: C) -> Monitor:
        """The monitor, watching ``cgroup``; its ``name`` is the kind's."""

    def run(self, config: C) -> KindRun:
        """``config`` tagged for ``MonitorConfig`` (typed: only this kind's config fits)."""
        return KindRun(self.name, config)

    def __repr__(self) -> str:
        return f"<monitor kind {self.name}>"
