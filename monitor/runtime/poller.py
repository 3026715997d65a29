"""What the blocking waits use of ``select.poll``, as a protocol, so a test can pass a
recorder and prove a wait has no timeout (sleeps until the kernel wakes it)."""

from __future__ import annotations

import select
from collections.abc import Callable
from typing import Protocol


class Poller(Protocol):
    def register(self, fd: int, eventmask: int = ...) -> None: ...

    def unregister(self, fd: int) -> None: ...

    def poll(self, timeout: float | None = ...) -> list[tuple[int, int]]: ...


PollerFactory = Callable[[], Poller]
new_poller: PollerFactory = select.poll
