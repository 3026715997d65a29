"""kubepods.slice under a real systemd (Debian's 252, PID 1 of its own namespaces in the
VM: tests/vm/systemd_container.py), as on a node whose kubelet uses the systemd cgroup
driver.

What systemd does to a ``memory.high`` written to cgroupfs alone, and that the agent's
systemd path (``SetUnitProperties`` ``MemoryHigh=`` through the system bus, ``--systemd-dbus
on``) keeps the guard's line where systemd re-applies the slice. Every claim has its control:
the same steps with the agent's systemd path off, where systemd undoes the line.

The agent reaches systemd as it does from its pod: through the system bus socket, from
outside systemd's PID namespace (the chart mounts /run/dbus, no ``hostPID``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest
from monitor_fakes import MI, Clock, Pods, fake_evictor
from prometheus_client import CollectorRegistry, generate_latest
from systemd_container import SystemdContainer, running_systemd

from oomguard.monitor.feedback.memory_high_collector import MemoryHighCollector
from oomguard.monitor.kube.pod_cgroups import CgroupDriver, KubepodsLocation
from oomguard.monitor.modes.node_agent import AgentOptions, NodeAgent
from oomguard.monitor.modes.systemd_memory_high import SystemdDBus
from oomguard.monitor.settings import EvictionSettings, NodeSettings

pytestmark = pytest.mark.kernel

SLICE = "kubepods.slice"
KUBEPODS = KubepodsLocation(CgroupDriver.SYSTEMD, PurePosixPath(SLICE))
ALLOCATABLE = 1000 * MI  # the kubelet's MemoryMax= on kubepods.slice
HIGH = 936 * MI  # the agent's line: memory.max 1000Mi - margin 64Mi (below memory - reserve)
OTHER = 300 * MI  # somebody else's MemoryHigh=


@pytest.fixture(scope="module")
def systemd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SystemdContainer]:
    log = tmp_path_factory.mktemp("systemd") / "pid1.log"
    started = time.monotonic()
    with running_systemd(log=log) as container:
        up = time.monotonic()
        container.start_system_bus()
        print(
            f"systemd up in {up - started:.1f} s, on the system bus "
            f"{time.monotonic() - up:.1f} s later"
        )
        # the kubelet's kubepods.slice, with a pod's process in it
        container.run(
            "systemd-run", "--unit=pod-holder.service", f"--slice={SLICE}", "sleep", "infinity"
        )
        yield container


@pytest.fixture
def kubepods(systemd: SystemdContainer) -> Path:
    """kubepods.slice as the kubelet leaves it (MemoryMax= allocatable, no MemoryHigh=),
    seen from the guest."""
    systemd.systemctl(
        "set-property", "--runtime", SLICE, f"MemoryMax={ALLOCATABLE}", "MemoryHigh=infinity"
    )
    path = systemd.cgroup / SLICE
    assert read(path / "memory.max") == str(ALLOCATABLE)
    assert read(path / "memory.high") == "max"
    return path


def read(path: Path) -> str:
    return path.read_text().strip()


def kubelet_update(systemd: SystemdContainer) -> None:
    """What the kubelet's periodic QoS/allocatable update sends (runc's systemd manager:
    the slice's resources again, MemoryMax= among them)."""
    systemd.systemctl("set-property", "--runtime", SLICE, f"MemoryMax={ALLOCATABLE}")


def make_agent(systemd: SystemdContainer, mode: SystemdDBus) -> NodeAgent:
    settings = NodeSettings(
        node_name="node-a",
        node_memory_bytes=1100 * MI,
        reserve_bytes=100 * MI,
        eviction=EvictionSettings(buffer_bytes=0, kill_fallback_wait_seconds=10),
    )
    clock = Clock()
    evictor = fake_evictor(clock=clock)
    options = AgentOptions(
        systemd.cgroup,
        KUBEPODS,
        margin_bytes=64 * MI,
        systemd_dbus=mode,
        systemd_socket=systemd.system_bus_socket,
    )
    return NodeAgent(options, settings, Pods(), evictor, clock=clock)


def drift_total(agent: NodeAgent) -> str:
    registry = CollectorRegistry()
    registry.register(MemoryHighCollector(agent.limit))
    lines = generate_latest(registry).decode().splitlines()
    return next(line for line in lines if line.startswith("oomguard_memory_high_drift_total "))


# -- (a) what this systemd does to a value written to cgroupfs alone ----------------------


@pytest.mark.parametrize("reapply", ["daemon-reload", "kubelet-update"])
def test_systemd_undoes_a_memory_high_written_to_cgroupfs_only(
    systemd: SystemdContainer, kubepods: Path, reapply: str
) -> None:
    (kubepods / "memory.high").write_text(f"{HIGH}\n")
    assert read(kubepods / "memory.high") == str(HIGH)
    if reapply == "daemon-reload":
        systemd.systemctl("daemon-reload")
    else:
        kubelet_update(systemd)
    assert read(kubepods / "memory.high") == "max"  # systemd's own MemoryHigh=infinity


def test_what_each_reapplication_does_to_a_cgroupfs_only_value(
    systemd: SystemdContainer, kubepods: Path
) -> None:
    """A record, printed for docs/real-node.md: which operations rewrite memory.high."""
    found = {}
    operations: dict[str, tuple[str, ...]] = {
        "daemon-reload": ("daemon-reload",),
        "set-property MemoryMax": ("set-property", "--runtime", SLICE, f"MemoryMax={ALLOCATABLE}"),
        "set-property CPUWeight": ("set-property", "--runtime", SLICE, "CPUWeight=50"),
        "set-property TasksMax": ("set-property", "--runtime", SLICE, "TasksMax=4096"),
        "daemon-reexec": ("daemon-reexec",),
    }
    for name, args in operations.items():
        (kubepods / "memory.high").write_text(f"{HIGH}\n")
        systemd.systemctl(*args)
        found[name] = read(kubepods / "memory.high")
    print(f"memory.high after writing {HIGH} to cgroupfs, then: {found}")
    assert found["daemon-reload"] == "max"


# -- (b) the guard's line, set through systemd, holds ----------------------------------------


@pytest.mark.parametrize("mode", [SystemdDBus.ON, SystemdDBus.OFF], ids=["systemd-on", "off"])
def test_the_guards_line_across_daemon_reload_and_a_kubelet_update(
    systemd: SystemdContainer, kubepods: Path, mode: SystemdDBus
) -> None:
    agent = make_agent(systemd, mode)
    agent.assert_memory_high()
    try:
        assert read(kubepods / "memory.high") == str(HIGH)
        systemd.systemctl("daemon-reload")
        after_reload = read(kubepods / "memory.high")
        (kubepods / "memory.high").write_text(f"{HIGH}\n")  # the control starts level again
        kubelet_update(systemd)
        after_update = read(kubepods / "memory.high")
        stored = systemd.systemctl("show", "-p", "MemoryHigh", "--value", SLICE).strip()
    finally:
        agent.restore_memory_high()
    if mode is SystemdDBus.ON:
        assert (after_reload, after_update, stored) == (str(HIGH), str(HIGH), str(HIGH))
        assert agent.limit.mirror is not None and agent.limit.mirror.failures == 0
    else:  # the control: the agent's cgroupfs write alone is undone both times
        assert (after_reload, after_update, stored) == ("max", "max", "infinity")
    assert read(kubepods / "memory.high") == "max"  # given back, to systemd too


# -- (c) drift: put back, counted, and told to systemd so that it stays ----------------------


@pytest.mark.parametrize("mode", [SystemdDBus.ON, SystemdDBus.OFF], ids=["systemd-on", "off"])
def test_drift_from_systemd_is_repaired_counted_and_stays_repaired(
    systemd: SystemdContainer, kubepods: Path, mode: SystemdDBus
) -> None:
    agent = make_agent(systemd, mode)
    agent.assert_memory_high()
    try:
        # another writer goes through systemd (an administrator, a second agent)
        systemd.systemctl("set-property", "--runtime", SLICE, f"MemoryHigh={OTHER}")
        assert read(kubepods / "memory.high") == str(OTHER)
        agent.step()  # the agent's check: drift, put back
        assert read(kubepods / "memory.high") == str(HIGH)
        assert drift_total(agent) == "oomguard_memory_high_drift_total 1.0"
        systemd.systemctl("daemon-reload")  # systemd re-applies what it has stored
        after_reload = read(kubepods / "memory.high")
    finally:
        agent.restore_memory_high()
    if mode is SystemdDBus.ON:
        assert after_reload == str(HIGH)  # the repair was told to systemd too
    else:  # the control: systemd still holds the other value and writes it again
        assert after_reload == str(OTHER)


def test_drift_after_daemon_reload_is_repaired_without_systemd(
    systemd: SystemdContainer, kubepods: Path
) -> None:
    """The cgroupfs-only agent still holds its line between re-applications: its next check
    puts back what systemd wrote, and counts it."""
    agent = make_agent(systemd, SystemdDBus.OFF)
    agent.assert_memory_high()
    try:
        systemd.systemctl("daemon-reload")
        assert read(kubepods / "memory.high") == "max"
        agent.step()
        assert read(kubepods / "memory.high") == str(HIGH)
        assert drift_total(agent) == "oomguard_memory_high_drift_total 1.0"
    finally:
        agent.restore_memory_high()
