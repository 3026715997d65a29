"""``run_parts``: the order of set-up and the way out, with the parts as recording fakes."""

import threading
from typing import Any

from oomguard.monitor.modes.node_runtime import AgentParts, run_parts
from oomguard.monitor.runtime.stop_signal import StopSignal


class NeverSyncedWatch:
    """A watch whose list never arrives: set-up waits on ``synced``."""

    def __init__(self, calls: list[str]) -> None:
        self.synced = threading.Event()
        self._calls = calls

    def run(self, stop: StopSignal) -> None:
        stop.wait()

    def stop(self) -> None:
        self._calls.append("watch stopped")


class RecordingAgent:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls
        self.changes = None

    def __getattr__(self, name: str) -> Any:
        def record(*_args: object) -> None:
            self.calls.append(name)

        return record


def test_a_stop_during_set_up_sets_nothing_and_still_restores():
    calls: list[str] = []
    watch = NeverSyncedWatch(calls)
    parts = AgentParts(RecordingAgent(calls), watch, None)  # type: ignore[arg-type]
    stop = StopSignal()
    runner = threading.Thread(target=run_parts, args=(parts, stop))
    runner.start()
    stop.set()  # what SIGTERM does under signals_set_stop
    runner.join(60)  # without stop in the waits: 30 s, then the loop would run forever
    assert not runner.is_alive()
    assert calls == ["watch stopped", "restore_memory_high"]
