"""The real node under the systemd cgroup driver (issue #11, point 5): kubelet ``cgroupDriver:
systemd``, containerd's runc with ``SystemdCgroup = true``, both services of a real systemd
(Debian's 252, PID 1 of its own namespaces in the VM: ``node_bed.running_node(driver=
"systemd")``).

The claim: the guard's kubepods memory.high, told to systemd (``--systemd-dbus on``:
``SetUnitProperties MemoryHigh=`` on ``kubepods.slice``), stays at the guard's value across
a kubelet restart and a ``systemctl daemon-reload``; its control, the same steps with the
value written to cgroupfs only, shows what a restarted kubelet does to it (it re-applies
kubepods.slice's properties, and systemd then writes memory.high from its own record:
kubernetes/kubernetes#138431, #88197).

The agent runs first in the test process (as in
``tests/monitor/systemd/test_systemd_kernel.py``), so that ``--systemd-dbus off`` gives the
control; it reaches systemd through the system bus socket from outside systemd's PID
namespace, as the pod would. Then the chart is installed as it ships and its agent pod does
the same, an upgrade to another reserve moves the line live, and the uninstall gives the
slice back (once installed, the pod is a second writer of memory.high). Last, sidecar mode
on this driver.
"""

from __future__ import annotations

import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from chart_release import (
    CHART,
    NAMESPACE,
    RELEASE,
    UPGRADED_RESERVE_MI,
    agent_logs,
    describe,
    helm,
    image_values,
    node_memory_bytes,
    pods_ready,
    reserve_values,
)
from k8s_helpers import wait_for
from kubernetes.client import CoreV1Api
from node_bed import NODE_NAME, PYTHON_IMAGE, REPO, Node, running_node
from pool_runs import assert_newest_workers_stopped, run_pool
from prometheus_scrape import scraping_the_agent
from storm_runs import StormBed, pressure_tainted, run_unguarded_storm
from storm_verdict import assert_storm_stopped_newest_first
from systemd_container import SystemdContainer
from systemd_services import SystemdServices

from oomguard.monitor.kube.pod_cgroups import CgroupDriver, KubepodsLocation
from oomguard.monitor.modes.node_agent import AgentOptions, NodeAgent
from oomguard.monitor.modes.systemd_memory_high import SystemdDBus
from oomguard.monitor.settings import EvictionSettings, NodeSettings

sys.path.insert(0, str(REPO / "tests" / "monitor"))
from monitor_fakes import Clock, Pods, fake_evictor

pytestmark = [pytest.mark.kernel(memory="7G"), pytest.mark.node, pytest.mark.timeout(2400)]

MI = 2**20
SLICE = "kubepods.slice"
# the guard's line: node memory - RESERVE_MI, below the kubelet's memory.max (node memory -
# SYSTEM_RESERVED_MI) less the margin, so it does not depend on memory.max
RESERVE_MI = 3072
AGENT_PORT = 9610  # the chart's agent.port
REAPPLY_TIMEOUT = 300.0  # a restarted kubelet's container manager, under emulation


@pytest.fixture(scope="module")
def systemd_node() -> Iterator[Node]:
    with running_node(driver="systemd") as running:
        try:
            yield running
        finally:
            print(running.log_tail("kubelet", 60))


def systemd_of(node: Node) -> SystemdContainer:
    assert node.systemd is not None, "the node bed did not run the systemd driver"
    return node.systemd


def services_of(node: Node) -> SystemdServices:
    assert node.services is not None, "the node bed did not run the systemd driver"
    return node.services


def slice_property(node: Node, name: str, unit: str = SLICE) -> str:
    return systemd_of(node).systemctl("show", "-p", name, "--value", unit).strip()


def memory_file(node: Node, name: str) -> str:
    return (node.cgroup_root / SLICE / name).read_text().strip()


def make_agent(node: Node, mode: SystemdDBus) -> NodeAgent:
    """The node agent's memory.high part, as the chart's agent runs it on this node (evictions
    go to a stand-in API: no test here makes pressure)."""
    settings = NodeSettings(
        node_name=NODE_NAME,
        node_memory_bytes=node_memory_bytes(CoreV1Api(node.cp.api_client)),
        reserve_bytes=RESERVE_MI * MI,
        eviction=EvictionSettings(buffer_bytes=0, kill_fallback_wait_seconds=10),
    )
    clock = Clock()
    evictor = fake_evictor(clock=clock)
    options = AgentOptions(
        node.cgroup_root,
        KubepodsLocation(CgroupDriver.SYSTEMD, PurePosixPath(SLICE)),
        systemd_dbus=mode,
        systemd_socket=systemd_of(node).system_bus_socket,
    )
    return NodeAgent(options, settings, Pods(), evictor, clock=clock)


def move_memory_max_off(node: Node) -> str:
    """Set kubepods.slice ``MemoryMax=`` 4 MiB below the kubelet's value, and return that
    value: seeing it back later proves a kubelet's ``SetUnitProperties`` reached systemd
    (each such call makes systemd rewrite the slice's cgroup files from its record,
    memory.high included). Itself such a call, so it comes before any memory.high write."""
    allocatable = slice_property(node, "MemoryMax")
    assert allocatable.isdigit(), f"kubepods.slice MemoryMax={allocatable}"
    marker = str(int(allocatable) - 4 * MI)
    systemd_of(node).systemctl("set-property", "--runtime", SLICE, f"MemoryMax={marker}")
    assert slice_property(node, "MemoryMax") == marker
    return allocatable


def restart_kubelet_until_reapplied(node: Node, allocatable: str) -> float:
    """``systemctl restart kubelet``, then wait for the new kubelet to set ``MemoryMax=``
    back to ``allocatable``; returns the seconds from the restart to that."""
    services = services_of(node)
    old_pid = services.main_pid("kubelet")
    started = time.monotonic()
    services.restart("kubelet")
    assert services.main_pid("kubelet") not in (0, old_pid)
    wait_for(
        "the restarted kubelet to set kubepods.slice MemoryMax= again",
        lambda: slice_property(node, "MemoryMax") == allocatable,
        timeout=REAPPLY_TIMEOUT,
        interval=1.0,
    )
    return time.monotonic() - started


def test_the_kubelet_makes_kubepods_slice_a_systemd_unit(systemd_node: Node) -> None:
    """The systemd driver for real: kubepods.slice is a transient unit the kubelet made
    through D-Bus, with allocatable as MemoryMax= and no MemoryHigh=."""
    props = {
        name: slice_property(systemd_node, name)
        for name in ("Transient", "ActiveState", "ControlGroup", "MemoryMax", "MemoryHigh")
    }
    print(f"kubepods.slice: {props}")
    assert props["Transient"] == "yes"
    assert props["ActiveState"] == "active"
    assert props["ControlGroup"] == f"/{SLICE}"
    assert props["MemoryMax"] == memory_file(systemd_node, "memory.max") != "infinity"
    assert props["MemoryHigh"] == "infinity"
    assert memory_file(systemd_node, "memory.high") == "max"


def test_a_pod_runs_in_a_systemd_scope_under_kubepods_slice(systemd_node: Node) -> None:
    """containerd's runc with SystemdCgroup: the container is a scope unit in the pod's
    slice, under kubepods.slice."""
    core = CoreV1Api(systemd_node.cp.api_client)
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "systemd-scope"},
        "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "sleep",
                    "image": PYTHON_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", "import time; time.sleep(10**6)"],
                }
            ],
        },
    }
    pod = core.create_namespaced_pod("default", body)
    try:
        wait_for(
            "the pod to run",
            lambda: core.read_namespaced_pod("systemd-scope", "default").status.phase == "Running",
            timeout=300,
            interval=1.0,
        )
        pod_slice = f"kubepods-besteffort-pod{pod.metadata.uid.replace('-', '_')}.slice"
        parent = systemd_node.cgroup_root / SLICE / "kubepods-besteffort.slice" / pod_slice
        scopes = sorted(p.name for p in parent.glob("cri-containerd-*.scope"))
        print(f"{parent.relative_to(systemd_node.cgroup_root)}: {scopes}")
        assert scopes, f"no cri-containerd scope in {parent}"
        for scope in scopes:
            assert slice_property(systemd_node, "ActiveState", scope) == "active"
    finally:
        core.delete_namespaced_pod("systemd-scope", "default", grace_period_seconds=0)


def test_a_restarted_kubelet_reapplies_kubepods_slice_properties(systemd_node: Node) -> None:
    """What makes the point matter: the kubelet sends kubepods.slice's properties again when
    it starts (runc's systemd manager: SetUnitProperties), so systemd rewrites the slice's
    cgroup files on every kubelet restart, not only on a daemon-reload."""
    allocatable = move_memory_max_off(systemd_node)
    took = restart_kubelet_until_reapplied(systemd_node, allocatable)
    print(f"kubelet restart -> kubepods.slice MemoryMax= set again: {took:.1f} s")


@pytest.mark.parametrize("mode", [SystemdDBus.ON, SystemdDBus.OFF], ids=["systemd-on", "off"])
def test_the_guards_line_across_a_kubelet_restart_and_daemon_reload(
    systemd_node: Node, mode: SystemdDBus
) -> None:
    """ON: memory.high stays at the guard's value after both. OFF (the control, the value in
    cgroupfs only): the restarted kubelet's re-apply and the daemon-reload each put
    systemd's ``MemoryHigh=infinity`` back (memory.high ``max``)."""
    agent = make_agent(systemd_node, mode)
    allocatable = move_memory_max_off(systemd_node)  # before the agent writes
    agent.assert_memory_high()
    try:
        guard = str(agent.limit_bytes())
        assert memory_file(systemd_node, "memory.high") == guard
        restart_kubelet_until_reapplied(systemd_node, allocatable)
        after_restart = memory_file(systemd_node, "memory.high")
        agent.assert_memory_high()  # the agent's loop puts a rewritten line back
        assert memory_file(systemd_node, "memory.high") == guard
        systemd_of(systemd_node).systemctl("daemon-reload")
        after_reload = memory_file(systemd_node, "memory.high")
        stored = slice_property(systemd_node, "MemoryHigh")
    finally:
        agent.restore_memory_high()
    print(f"{mode.name}: after restart {after_restart}, after daemon-reload {after_reload}")
    if mode is SystemdDBus.ON:
        assert (after_restart, after_reload, stored) == (guard, guard, guard)
        assert agent.limit.mirror is not None and agent.limit.mirror.failures == 0
    else:
        assert (after_restart, after_reload, stored) == ("max", "max", "infinity")
    assert memory_file(systemd_node, "memory.high") == "max"  # given back, to systemd too


def qos_update_seen(node: Node, qos: str, weight: str) -> float:
    """Move the QoS slice's ``CPUWeight=`` off ``weight`` and wait until the kubelet's QoS
    manager has set it again (its ``UpdateCgroups``); the seconds that took."""
    marker = "50" if weight != "50" else "60"
    systemd_of(node).systemctl("set-property", "--runtime", qos, f"CPUWeight={marker}")
    assert slice_property(node, "CPUWeight", qos) == marker
    started = time.monotonic()
    wait_for(
        "the kubelet's QoS update to set CPUWeight= again",
        lambda: slice_property(node, "CPUWeight", qos) == weight,
        timeout=REAPPLY_TIMEOUT,
        interval=1.0,
    )
    return time.monotonic() - started


def test_the_kubelets_periodic_qos_update_leaves_kubepods_memory_high_alone(
    systemd_node: Node,
) -> None:
    """Between restarts: the kubelet's QoS manager sends the QoS slices' properties every
    minute (``UpdateCgroups``: ``CPUWeight=`` on kubepods-besteffort.slice); this records
    that systemd then leaves the *parent* slice's cgroupfs-only memory.high alone, so on
    this kubelet only a restart (and a daemon-reload) rewrites it. The update's proof: the
    QoS slice's ``CPUWeight=``, moved off first, comes back.

    The tests before restart the kubelet, whose start-up goes on re-applying kubepods.slice
    for a while after its ``MemoryMax=`` is back (one run saw memory.high rewritten 2.9 s
    into this test): one QoS update is let pass first, so the one observed is periodic."""
    qos = "kubepods-besteffort.slice"
    weight = slice_property(systemd_node, "CPUWeight", qos)
    assert weight.isdigit(), f"{qos} CPUWeight={weight}"
    print(f"start-up's QoS update let pass: {qos_update_seen(systemd_node, qos, weight):.1f} s")
    agent = make_agent(systemd_node, SystemdDBus.OFF)  # the value in cgroupfs only
    agent.assert_memory_high()
    try:
        guard = str(agent.limit_bytes())
        took = qos_update_seen(systemd_node, qos, weight)
        print(f"periodic QoS update {took:.1f} s after the marker")
        assert memory_file(systemd_node, "memory.high") == guard
    finally:
        agent.restore_memory_high()


# -- the chart as it ships (agent.cgroupDriver=systemd, systemdDBus auto, /run/dbus) -------
# Last in the file: once installed, its agent is a second writer of kubepods memory.high.


@pytest.fixture(scope="module")
def chart(systemd_node: Node) -> Iterator[CoreV1Api]:
    """The chart installed with its defaults (the systemd driver, the D-Bus folder mounted);
    only the image, its pull policy and the reserve are set."""
    core = CoreV1Api(systemd_node.cp.api_client)
    core.create_namespace(
        {
            "metadata": {
                "name": NAMESPACE,
                "labels": {"pod-security.kubernetes.io/enforce": "privileged"},
            }
        }
    )
    result = helm(
        systemd_node, "install", RELEASE, str(CHART), "-n", NAMESPACE,
        *image_values(), *reserve_values(RESERVE_MI),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    try:
        yield core
    finally:
        helm(systemd_node, "uninstall", RELEASE, "-n", NAMESPACE, "--wait")  # no-op once done


def agent_pod(core: CoreV1Api) -> Any:
    """The chart's one agent pod (one node)."""
    pods = core.list_namespaced_pod(
        NAMESPACE, label_selector="app.kubernetes.io/component=agent"
    ).items
    assert len(pods) == 1, [p.metadata.name for p in pods]
    return pods[0]


def agent_metric(core: CoreV1Api, name: str) -> float:
    """A sample of the agent pod's /metrics, read at its pod address."""
    url = f"http://{agent_pod(core).status.pod_ip}:{AGENT_PORT}/metrics"
    with urllib.request.urlopen(url, timeout=30) as answer:
        text = answer.read().decode()
    line = next((x for x in text.splitlines() if x.startswith(f"{name} ")), None)
    assert line is not None, f"{name} not in {url}"
    return float(line.split()[1])


def wait_for_the_charts_line(node: Node, core: CoreV1Api, reserve_mi: int, timeout: float) -> None:
    """Until kubepods.slice ``MemoryHigh=`` is node memory - ``reserve_mi``; then memory.high
    must say the same. A timeout fails with memory.high and the agent's log."""
    line = str(node_memory_bytes(core) - reserve_mi * MI)
    try:
        wait_for(
            f"kubepods.slice MemoryHigh= at node memory - {reserve_mi}Mi",
            lambda: slice_property(node, "MemoryHigh") == line,
            timeout=timeout,
            interval=1.0,
        )
    except AssertionError as exc:
        high = memory_file(node, "memory.high")
        raise AssertionError(f"{exc} (memory.high {high})\n{agent_logs(core)}") from None
    assert memory_file(node, "memory.high") == line


def test_the_chart_as_it_ships_tells_systemd_the_guards_line(
    systemd_node: Node, chart: CoreV1Api
) -> None:
    """The agent's pod (no hostPID) sets kubepods.slice ``MemoryHigh=`` through the system
    bus the chart mounts, and memory.high follows."""
    selector = "app.kubernetes.io/component=agent"
    try:
        wait_for("the agent pod Ready", lambda: pods_ready(chart, selector), timeout=600)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{describe(chart, selector)}") from None
    wait_for_the_charts_line(systemd_node, chart, RESERVE_MI, timeout=600)


def test_the_charts_line_holds_across_a_kubelet_restart_and_daemon_reload(
    systemd_node: Node, chart: CoreV1Api
) -> None:
    """Held by systemd itself, not repaired by the agent afterwards: its drift counter stays
    where it was."""
    line = str(node_memory_bytes(chart) - RESERVE_MI * MI)
    assert memory_file(systemd_node, "memory.high") == line
    drift_before = agent_metric(chart, "oomguard_memory_high_drift_total")
    allocatable = move_memory_max_off(systemd_node)
    restart_kubelet_until_reapplied(systemd_node, allocatable)
    after_restart = memory_file(systemd_node, "memory.high")
    systemd_of(systemd_node).systemctl("daemon-reload")
    after_reload = memory_file(systemd_node, "memory.high")
    drift_after = agent_metric(chart, "oomguard_memory_high_drift_total")
    print(f"chart: after restart {after_restart}, after daemon-reload {after_reload}")
    assert (after_restart, after_reload) == (line, line)
    assert drift_after == drift_before, agent_logs(chart)


@pytest.fixture
def prometheus(systemd_node: Node, chart: CoreV1Api, tmp_path: Path) -> Iterator[str]:
    with scraping_the_agent(systemd_node.cp.api_client, tmp_path) as api:
        yield api


def storm_bed(node: Node) -> StormBed:
    return StormBed(node, CoreV1Api(node.cp.api_client), node.cgroup_root / SLICE)


def test_storm_is_stopped_newest_first_on_the_systemd_driver(
    systemd_node: Node, chart: CoreV1Api, prometheus: str
) -> None:
    """The storm (points 2, 4 and 6) on kubepods.slice, with the chart as it ships: no kernel
    OOM kill, newest first, the oldest pod completes, the agent scraped through the chart's
    Service, the storm's Deployment kept out of the storm by the taint."""
    line = str(node_memory_bytes(chart) - RESERVE_MI * MI)
    assert memory_file(systemd_node, "memory.high") == line, "the chart's line is not set"
    assert_storm_stopped_newest_first(storm_bed(systemd_node), prometheus)


def test_an_upgrade_moves_the_line_live_through_systemd(
    systemd_node: Node, chart: CoreV1Api
) -> None:
    """``helm upgrade`` with a new reserve (issue point 8): the policy's new reserve reaches
    the running agent through the operator's NodeMemoryReserve, and the agent tells systemd
    the new line. Live: the agent pod is the one that was running before."""
    uid = agent_pod(chart).metadata.uid
    result = helm(
        systemd_node, "upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values",
        *image_values(), *reserve_values(UPGRADED_RESERVE_MI),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    wait_for_the_charts_line(systemd_node, chart, UPGRADED_RESERVE_MI, timeout=300)
    assert agent_pod(chart).metadata.uid == uid, "the upgrade restarted the agent pod"


def test_uninstall_gives_kubepods_slice_back_to_systemd(
    systemd_node: Node, chart: CoreV1Api
) -> None:
    result = helm(systemd_node, "uninstall", RELEASE, "-n", NAMESPACE, "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    wait_for(
        "kubepods.slice MemoryHigh=infinity again",
        lambda: slice_property(systemd_node, "MemoryHigh") == "infinity",
        timeout=300,
        interval=1.0,
    )
    assert memory_file(systemd_node, "memory.high") == "max"
    assert not pressure_tainted(chart), "uninstall left the memory-pressure taint"


def test_without_the_guard_the_same_storm_gets_kernel_oom_kills_on_the_systemd_driver(
    systemd_node: Node,
) -> None:
    """The control (point 3), once the chart is gone: the same storm's pods, started
    together, pass kubepods.slice's memory.max and the kernel OOM-kills."""
    assert memory_file(systemd_node, "memory.high") == "max", "kubepods still has a line"
    killed, evicted = run_unguarded_storm(storm_bed(systemd_node), "storm-unguarded")
    assert not evicted, f"something evicted {sorted(evicted)} with no guard installed"
    assert killed, "the storm passed kubepods memory.max without a kernel OOM kill"


# -- sidecar mode on this driver (after the uninstall: the pod needs no chart) -----------


def test_sidecar_stops_the_newest_workers_on_the_systemd_driver(systemd_node: Node) -> None:
    """The chart README's sidecar example (point 7) where runc makes each container a
    systemd scope: the sidecar finds the pod's ``.slice``, splits the app's scope and stops
    the newest workers; the pod's ``oom_kill`` stays 0. Its control, the same pool without
    the sidecar OOM-killed, runs in the cgroupfs bed (``test_real_node_sidecar.py``)."""
    core = CoreV1Api(systemd_node.cp.api_client)
    result = run_pool(
        core,
        "pool-guarded",
        sidecar=True,
        cgroup_root=systemd_node.cgroup_root,
        driver=CgroupDriver.SYSTEMD,
    )
    assert_newest_workers_stopped(*result)
