"""What the node agent is told at start-up (``AgentOptions``: local facts and flags of this
node) and which settings it enforces once a NodeMemoryReserve says something."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from oomguard.monitor.kube.node_reserve import ReserveState
from oomguard.monitor.kube.pod_candidates import ProtectionRules
from oomguard.monitor.kube.pod_cgroups import KubepodsLocation
from oomguard.monitor.modes.systemd_memory_high import SystemdDBus
from oomguard.monitor.systemd.unit_memory import SYSTEM_BUS_SOCKET
from oomguard.wire.node_settings import NodeSettings


@dataclass(frozen=True)
class AgentOptions:
    """Local facts and flags of this node (not part of the NodeMemoryReserve settings)."""

    cgroup_root: Path  # the cgroup2 mount
    kubepods: KubepodsLocation
    self_uid: str | None = None
    self_key: str | None = None
    margin_bytes: int = 64 * 2**20
    set_memory_high: bool = True  # False on kernels < 5.9 (memory.high livelock risk)
    tick_seconds: float = 1.0
    min_step_interval: float = 0.1  # during an episode, at most one measurement per this
    force_dry_run: bool = False  # --dry-run on the command line wins over any reserve
    state_dir: Path | None = None  # on the host: the memory.high record and the agent lock
    systemd_dbus: SystemdDBus = SystemdDBus.OFF  # memory.high told to systemd too (its driver)
    systemd_socket: Path = SYSTEM_BUS_SOCKET


def effective_settings(
    state: ReserveState, fallback: NodeSettings, force_dry_run: bool
) -> NodeSettings:
    """The settings to enforce for a reserve state: the object's when it exists, else the
    command line's fallback (``--reserve``); ``--dry-run`` always wins."""
    settings = fallback if state.from_defaults else state.settings
    if force_dry_run and not settings.dry_run:
        settings = dataclasses.replace(settings, dry_run=True)
    return settings


def protection_rules(options: AgentOptions, settings: NodeSettings) -> ProtectionRules:
    """Which pods no decision may choose: the agent itself, every pod of its own namespace
    (the operator, which serves the eviction webhook, lives there), and what the settings
    protect."""
    eviction = settings.eviction
    own = {options.self_key.split("/", 1)[0]} if options.self_key else set()
    return ProtectionRules(
        self_uid=options.self_uid,
        self_key=options.self_key,
        protect_daemonset_pods=eviction.protect_daemonset_pods,
        protected_namespaces=frozenset(eviction.protected_namespaces) | own,
        annotation_namespaces=frozenset(eviction.protect_annotation_namespaces),
    )
