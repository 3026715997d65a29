"""Which settings the node agent enforces, and why: the NodeMemoryReserve it saw last, the
settings taken from it (or the command line's fallback), and why the last offer was refused.

The agent offers each new reserve state here; an unsafe one (``settings_floor``) is refused,
the last good settings stay, and the state says so for status and the CRD. Holds no lock and
does no I/O of its own: the agent calls it under its lock, with the check that reads
kubepods ``memory.max``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from oomguard.monitor.kube.node_reserve import ReserveState
from oomguard.monitor.modes.node_options import effective_settings
from oomguard.wire.node_settings import NodeSettings


class ReserveKeeper:
    def __init__(self, fallback: NodeSettings) -> None:
        self.settings = fallback  # what is enforced now
        self.fallback = fallback  # the command line's settings, used without a reserve
        self.state: ReserveState | None = None  # None: no reserve state seen yet
        self.refused: str | None = None  # why the last offer was not enforced

    def offer(
        self,
        state: ReserveState,
        force_dry_run: bool,
        unsafe: Callable[[NodeSettings], str | None],
    ) -> NodeSettings | None:
        """Take a new reserve state (a new version, or its deletion). Returns the settings
        to enforce from now on; None when nothing changes: the same settings, or refused
        (``refused`` says why, and ``state`` keeps the last good settings)."""
        self.state = state
        settings = effective_settings(state, self.fallback, force_dry_run)
        if settings == self.settings:
            self.refused = None  # back to what is enforced
            return None
        self.refused = unsafe(settings)
        if self.refused is not None:  # status and the CRD: not applied, last good kept
            self.state = dataclasses.replace(state, settings=self.settings, error=self.refused)
            return None
        return settings
