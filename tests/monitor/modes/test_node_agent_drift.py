"""Kubepods memory.high put back when something else writes it (both drivers), never in dry
run and never after the agent let go of it; on systemd-driver nodes told to systemd too,
through a fake D-Bus peer on a real unix socket."""

import logging
import sys
from pathlib import Path, PurePosixPath

import pytest
from monitor_fakes import MI, Clock, Pods, fake_evictor, write_cgroup
from prometheus_client import CollectorRegistry, generate_latest

from oomguard.monitor.feedback.memory_high_collector import MemoryHighCollector
from oomguard.monitor.kube.pod_cgroups import CgroupDriver, KubepodsLocation
from oomguard.monitor.modes.node_agent import AgentOptions, NodeAgent
from oomguard.monitor.modes.systemd_memory_high import SystemdDBus
from oomguard.monitor.settings import EvictionSettings, NodeSettings
from oomguard.monitor.systemd.dbus_values import (
    Variant,
)
from oomguard.monitor.systemd.unit_memory import INFINITY

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "systemd"))
from fake_dbus import FakeDBusPeer

SYSTEMD = KubepodsLocation(CgroupDriver.SYSTEMD, PurePosixPath("kubepods.slice"))
CGROUPFS = KubepodsLocation(CgroupDriver.CGROUPFS, PurePosixPath("kubepods"))
HIGH = 936 * MI  # memory.max 1000Mi - margin 64Mi, below memory - reserve


def make_agent(root, location, dry_run=False, **options):
    kubepods = root / location.path
    write_cgroup(kubepods, 0, maximum=str(1000 * MI), kill_file=True)
    settings = NodeSettings(
        node_name="node-a",
        node_memory_bytes=1100 * MI,
        reserve_bytes=100 * MI,
        eviction=EvictionSettings(buffer_bytes=0, kill_fallback_wait_seconds=10),
        dry_run=dry_run,
    )
    clock = Clock()
    evictor = fake_evictor(clock=clock)
    agent_options = AgentOptions(root, location, margin_bytes=64 * MI, **options)
    agent = NodeAgent(agent_options, settings, Pods(), evictor, clock=clock)
    return agent, kubepods / "memory.high"


def drift_metrics(agent):
    registry = CollectorRegistry()
    registry.register(MemoryHighCollector(agent.limit))
    return generate_latest(registry).decode()


@pytest.mark.parametrize("location", [SYSTEMD, CGROUPFS], ids=["systemd", "cgroupfs"])
def test_drift_is_put_back_logged_once_per_episode_and_counted(tmp_path, location, caplog):
    agent, high = make_agent(tmp_path, location)
    agent.assert_memory_high()
    assert high.read_text() == f"{HIGH}\n"
    with caplog.at_level(logging.WARNING, logger="oomguard.node"):
        # a writer that keeps fighting: every check finds its value (one episode)
        for _ in range(3):
            high.write_text("max\n")
            agent.step()
            assert high.read_text() == f"{HIGH}\n"
        agent.step()  # finds ours: the episode is over
        high.write_text(f"{HIGH + MI}\n")
        agent.step()  # a new one
    assert high.read_text() == f"{HIGH}\n"
    warnings = [r for r in caplog.records if "changed by someone else" in r.getMessage()]
    assert len(warnings) == 2
    assert agent.limit.drift.repairs == 4
    assert agent.counters["memory_high_reasserted"] == 4
    assert "oomguard_memory_high_drift_total 4.0" in drift_metrics(agent)
    assert "oomguard_systemd_failures" not in drift_metrics(agent)  # systemd not asked


def test_a_change_of_our_own_is_no_drift(tmp_path):
    agent, high = make_agent(tmp_path, SYSTEMD)
    agent.assert_memory_high()
    agent.update_settings(agent.settings.with_reserve(200 * MI))  # 900Mi, under the cap
    assert high.read_text() == f"{900 * MI}\n"
    assert agent.limit.drift.repairs == 0


def test_dry_run_never_writes_or_counts_drift(tmp_path):
    agent, high = make_agent(tmp_path, SYSTEMD, dry_run=True)
    agent.assert_memory_high()
    high.write_text(f"{5 * MI}\n")  # somebody else's value: not ours to judge
    agent.step()
    assert high.read_text() == f"{5 * MI}\n"
    assert agent.limit.drift.repairs == 0


def test_nothing_is_put_back_after_the_agent_let_go(tmp_path):
    agent, high = make_agent(tmp_path, SYSTEMD)
    agent.assert_memory_high()
    agent.restore_memory_high()  # on the way out
    assert high.read_text() == "max\n"
    agent.step()  # a step or a reload still running must not set it again
    agent.update_settings(agent.settings.with_reserve(200 * MI))
    assert high.read_text() == "max\n"
    assert agent.limit.drift.repairs == 0


@pytest.fixture
def systemd_bus(tmp_path):
    peer = FakeDBusPeer(tmp_path / "system_bus_socket", bus=True)
    yield peer
    peer.close()


def memory_highs(peer):
    return [call.body[2] for call in peer.calls]


def test_systemd_is_told_what_is_set_and_restored(tmp_path, systemd_bus):
    agent, high = make_agent(
        tmp_path, SYSTEMD, systemd_dbus=SystemdDBus.AUTO, systemd_socket=systemd_bus.path
    )
    agent.assert_memory_high()
    agent.step()  # in place, and systemd has it: no second call
    assert high.read_text() == f"{HIGH}\n"
    assert [c.body[:2] for c in systemd_bus.calls] == [("kubepods.slice", True)]
    high.write_text("max\n")  # e.g. `systemctl set-property kubepods.slice MemoryHigh=...`
    agent.step()
    assert high.read_text() == f"{HIGH}\n"
    agent.step()  # in place again: no further call
    agent.restore_memory_high()
    assert memory_highs(systemd_bus) == [
        [("MemoryHigh", Variant("t", HIGH))],
        # drift: told again, since systemd may now store the other value (a real systemd
        # then wrote it back at the next daemon-reload: test_systemd_kernel.py)
        [("MemoryHigh", Variant("t", HIGH))],
        [("MemoryHigh", Variant("t", INFINITY))],  # the "max" found before
    ]
    assert "oomguard_systemd_failures_total 0.0" in drift_metrics(agent)


def test_systemd_is_told_even_when_cgroupfs_already_holds_the_value(tmp_path, systemd_bus):
    """An agent restarted after a crash finds its line in place; systemd may not have it."""
    agent, high = make_agent(
        tmp_path, SYSTEMD, systemd_dbus=SystemdDBus.ON, systemd_socket=systemd_bus.path
    )
    high.write_text(f"{HIGH}\n")
    agent.assert_memory_high()
    assert memory_highs(systemd_bus) == [[("MemoryHigh", Variant("t", HIGH))]]


def test_systemd_failures_are_counted_never_fatal(tmp_path, caplog):
    absent = tmp_path / "no-bus"
    agent, high = make_agent(tmp_path, SYSTEMD, systemd_dbus=SystemdDBus.ON, systemd_socket=absent)
    with caplog.at_level(logging.WARNING, logger="oomguard.node"):
        agent.assert_memory_high()
        agent.step()  # within the retry interval: not asked again
    assert high.read_text() == f"{HIGH}\n"  # the cgroupfs write happened all the same
    assert agent.limit.mirror is not None
    assert agent.limit.mirror.failures == 1
    assert "oomguard_systemd_failures_total 1.0" in drift_metrics(agent)
    assert sum("systemd did not take" in r.getMessage() for r in caplog.records) == 1


def test_systemd_is_not_asked_on_cgroupfs_nodes_or_when_off(tmp_path, systemd_bus):
    for location, mode in ((CGROUPFS, SystemdDBus.ON), (SYSTEMD, SystemdDBus.OFF)):
        root = tmp_path / location.driver.value / mode.value
        agent, _ = make_agent(root, location, systemd_dbus=mode, systemd_socket=systemd_bus.path)
        agent.assert_memory_high()
        assert agent.limit.mirror is None
    assert systemd_bus.calls == []


def test_auto_without_a_socket_leaves_systemd_alone(tmp_path):
    agent, high = make_agent(
        tmp_path, SYSTEMD, systemd_dbus=SystemdDBus.AUTO, systemd_socket=tmp_path / "absent"
    )
    agent.assert_memory_high()
    assert agent.limit.mirror is None
    assert high.read_text() == f"{HIGH}\n"
