"""When a victim's grace ends early: it sleeps in memory.high's throttling penalty.

Under ``memory.high`` a process that allocates over the line sleeps in the kernel on its way
back to user space, again at each return while the cgroup is still over (up to 2 s each).
That sleep is killable only: a SIGTERM handler runs once the process gets back to user space
with nothing more to pay, which for an allocator caught in a long fill is after many of them,
while its memory stays charged and the guarded cgroup stays over its line. A SIGKILL ends
the sleep at once. (Measured in the VM: a Python allocator in its fill answered SIGTERM after
1.2 s, SIGKILL after 37 ms; sampled every 20 ms, it was asleep in the penalty in 2 of 3 samples
and running between them.)

So the grace counts the time a victim is seen asleep in the penalty, check after check, and
once that adds up to ``patience`` the victim is killed without waiting out its grace. The
time adds up over the checks rather than needing an unbroken run of them, since a throttled
allocator runs briefly between its sleeps. A victim that is running, or asleep anywhere else
(its handler's own I/O, say), adds nothing and keeps its full grace. Pure: the caller passes
what /proc showed and ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ThrottledVictims:
    patience: float  # seconds seen asleep in the penalty before the SIGKILL; 0: at once
    _last_check: dict[str, float] = field(default_factory=dict)  # victim id -> time
    _asleep: dict[str, float] = field(default_factory=dict)  # victim id -> seconds seen asleep

    def __post_init__(self) -> None:
        if self.patience < 0:
            raise ValueError(f"patience must not be negative, got {self.patience}")

    def kill_now(self, victim_id: str, throttled: bool, now: float) -> bool:
        """Note one check of ``victim_id``: asleep in the penalty (``throttled``) or not.
        The time since its previous check counts as asleep when this one finds it asleep.
        True once that time adds up to ``patience``."""
        last = self._last_check.get(victim_id)
        self._last_check[victim_id] = now
        if not throttled:
            return False
        asleep = self._asleep.get(victim_id, 0.0) + (0.0 if last is None else now - last)
        self._asleep[victim_id] = asleep
        return asleep >= self.patience
