"""Live reload on a plain-file kubepods tree: a NodeMemoryReserve state moves memory.high and
restarts the monitors the settings ask for; status and report say where settings came from."""

import threading
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from monitor_fakes import MI, Pods, fake_evictor, wait_for, write_cgroup

from oomguard.monitor.kube.node_reserve import ReserveState, reserve_status, state_for
from oomguard.monitor.kube.pod_cgroups import CgroupDriver, KubepodsLocation
from oomguard.monitor.modes.node_agent import (
    AgentOptions,
    NodeAgent,
    effective_settings,
    status_trigger,
)
from oomguard.monitor.modes.status_command import render_table
from oomguard.monitor.settings import (
    MonitorSettings,
    NodeSettings,
    PressureMonitorSettings,
    default_node_settings,
)
from oomguard.monitor.triggers.factory import build_monitors
from oomguard.monitor.triggers.kinds.event import EVENT
from oomguard.monitor.triggers.kinds.pressure import PRESSURE
from oomguard.monitor.triggers.kinds.threshold import THRESHOLD
from oomguard.monitor.triggers.stop_signal import StopSignal

LOC = KubepodsLocation(CgroupDriver.SYSTEMD, PurePosixPath("kubepods.slice"))


def write_kubepods(root: Path, current: int, maximum: int) -> Path:
    return write_cgroup(
        root / "kubepods.slice", current, maximum=str(maximum), events_high=7, pressure=True
    )


class NoApi:
    def evict(self, namespace, name, grace, uid=None):
        raise AssertionError("no eviction expected")


def reserve_object(reserve_mi, generation=1, **spec):
    body = {
        "nodeName": "node-a",
        "sourcePolicy": "default",
        "nodeMemoryBytes": 2000 * MI,
        "reserveBytes": reserve_mi * MI,
    } | spec
    return {"metadata": {"name": "node-a", "generation": generation}, "spec": body}


def make_agent(tmp_path, fixed_monitors=None, builder=build_monitors, set_high=True, **options):
    write_kubepods(tmp_path, 100 * MI, 4000 * MI)
    fallback = NodeSettings("node-a", 2000 * MI, 500 * MI)
    evictor = fake_evictor(NoApi())
    agent_options = AgentOptions(
        tmp_path, LOC, set_memory_high=set_high, tick_seconds=0.05, **options
    )
    return NodeAgent(
        agent_options, fallback, Pods(), evictor, fixed_monitors, monitor_builder=builder
    )


def high_file(tmp_path):
    return (tmp_path / "kubepods.slice" / "memory.high").read_text().strip()


def test_reserve_object_moves_memory_high_and_deletion_restores_the_fallback(tmp_path):
    agent = make_agent(tmp_path)
    agent.assert_memory_high()
    assert high_file(tmp_path) == str(1500 * MI)  # fallback: 2000Mi - 500Mi
    agent.apply_reserve(state_for(reserve_object(300), "node-a", 2000 * MI, None))
    assert high_file(tmp_path) == str(1700 * MI)
    assert agent.status()["settings"]["policy"] == "default"
    assert agent.evictor.grace_period_seconds == 10
    agent.apply_reserve(state_for(None, "node-a", 2000 * MI, agent.reserve_state))
    assert high_file(tmp_path) == str(1500 * MI)
    settings_status = agent.status()["settings"]
    assert settings_status["from_defaults"] is True
    assert "no NodeMemoryReserve" in settings_status["source"]
    assert "no NodeMemoryReserve" in render_table(agent.status())


def test_unusable_spec_keeps_previous_settings_and_reports_why(tmp_path):
    agent = make_agent(tmp_path)
    good = state_for(reserve_object(300), "node-a", 2000 * MI, None)
    agent.apply_reserve(good)
    bad = state_for(reserve_object(300, 2, eviction={"policy": "Oldest"}), "node-a", 0, good)
    agent.apply_reserve(bad)
    assert high_file(tmp_path) == str(1700 * MI)
    assert "eviction.policy" in agent.status()["settings"]["error"]
    report = agent.report()
    status = reserve_status(report, None, datetime.now(UTC))
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Degraded"]["status"] == "True"
    assert conditions["Enforcing"]["reason"] == "InvalidSpec"


def test_command_line_dry_run_wins_over_the_reserve():
    fallback = NodeSettings("node-a", 2000 * MI, 500 * MI)
    state = state_for(reserve_object(300, dryRun=False), "node-a", 2000 * MI, None)
    assert effective_settings(state, fallback, force_dry_run=True).dry_run is True
    assert effective_settings(state, fallback, force_dry_run=False).dry_run is False
    none = ReserveState(default_node_settings("node-a", 2000 * MI), None)
    assert effective_settings(none, fallback, False) is fallback


def test_trigger_kinds_map_onto_the_crd_enum():
    assert status_trigger("event,threshold") == "event"
    assert status_trigger("pressure,threshold") == "pressure"
    assert status_trigger("timer") == "threshold"
    assert status_trigger("threshold") == "threshold"


class Recorder:
    """A monitor builder that records each configuration it was asked for."""

    def __init__(self):
        self.configs = []

    def __call__(self, cgroup, config):
        self.configs.append(config)
        return build_monitors(cgroup, config)


def run_agent(agent):
    stop = StopSignal()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


def count_steps(agent):
    """Wrap ``agent.step`` to count the loop's steps (each is followed by a monitor sync)."""
    steps = []
    original = agent.step

    def step(kind="timer", detected_at=None):
        steps.append(kind)
        return original(kind, detected_at)

    agent.step = step
    return steps


def test_monitors_follow_the_settings_and_restart_on_change(tmp_path):
    recorder = Recorder()
    agent = make_agent(tmp_path, builder=recorder)
    steps = count_steps(agent)
    stop, thread = run_agent(agent)
    try:
        assert wait_for(lambda: len(recorder.configs) == 1)
        first = recorder.configs[0]
        assert first.get(EVENT) and first.get(PRESSURE) is None
        assert first.get(THRESHOLD).limit_bytes == int(1500 * MI * 0.95)
        assert agent.status()["monitors"]["running"] == ["event", "threshold"]
        with_pressure = MonitorSettings(pressure=PressureMonitorSettings(True))
        agent.apply_reserve(
            state_for(
                reserve_object(300, monitor=with_pressure.to_spec()), "node-a", 2000 * MI, None
            )
        )
        assert wait_for(lambda: len(recorder.configs) == 2)
        second = recorder.configs[1]
        assert second.get(PRESSURE) is not None
        assert second.get(THRESHOLD).limit_bytes == int(1700 * MI * 0.95)
        # two more steps, so at least one full step + monitor sync ran on the new settings
        seen = len(steps)
        assert wait_for(lambda: len(steps) >= seen + 2)
        assert len(recorder.configs) == 2  # unchanged settings: no restart
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()


def test_threshold_monitor_wakes_the_agent_on_an_old_kernel(tmp_path):
    recorder = Recorder()
    agent = make_agent(tmp_path, builder=recorder, set_high=False)
    steps = count_steps(agent)
    (tmp_path / "kubepods.slice" / "memory.current").write_text(f"{1490 * MI}\n")
    stop, thread = run_agent(agent)
    try:
        assert wait_for(lambda: "threshold" in ",".join(steps))
    finally:
        stop.set()
        thread.join(30)
    config = recorder.configs[0]
    assert not config.get(EVENT) and config.get(PRESSURE) is not None
    assert high_file(tmp_path) == "max"  # never written before 5.9
    report = agent.report()
    assert report is None  # no reserve state yet: nothing to report into


def test_monitor_failure_is_reported_as_degraded(tmp_path):
    class Broken:
        name = "event"

        def run(self, sink, stop):
            from oomguard.monitor.triggers.trigger import MonitorError

            raise MonitorError("memory.events vanished")

    agent = make_agent(tmp_path, fixed_monitors=[Broken()])
    agent.apply_reserve(state_for(reserve_object(300), "node-a", 2000 * MI, None))
    stop, thread = run_agent(agent)
    try:
        assert wait_for(lambda: agent.monitors.failures)
    finally:
        stop.set()
        thread.join(30)
    report = agent.report()
    assert report.degraded_reason == "MonitorFailed"
    assert "memory.events vanished" in report.degraded_message
    assert report.memory_events["high"] == 7
    assert report.memory_high_bytes == 1700 * MI
    assert report.memory_max_bytes == 4000 * MI


def test_new_reserves_refusals_and_steps_tell_the_status_reporter(tmp_path):
    """The reporter sleeps on ``agent.changes``: whatever can change the status raises it."""
    agent = make_agent(tmp_path)
    assert not agent.changes.reset()
    agent.apply_reserve(state_for(reserve_object(300), "node-a", 2000 * MI, None))
    assert agent.changes.reset()
    agent.apply_reserve(state_for(reserve_object(1999, 2), "node-a", 2000 * MI, None))
    assert agent.changes.reset()  # refused: Degraded is news too
    agent.step()
    assert agent.changes.reset()
    assert not agent.changes.reset()
