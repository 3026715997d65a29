"""Sidecar mode's pure decisions: the pod and workload cgroups, who is a worker, memory.high."""

import re
from pathlib import PurePosixPath as P

import pytest

from oomguard.monitor.modes.sidecar_layout import (
    ContainerCgroup,
    NoWorkloadYet,
    ProcessFacts,
    SidecarSetupError,
    WorkerSelector,
    default_reserve,
    pod_cgroup_for_uid,
    pod_cgroup_of_own,
    pod_limit,
    workers_memory_high,
    workload_cgroup,
)

MI = 2**20
UID = "0f6b3c2e-1d2a-4c5b-8e9f-a1b2c3d4e5f6"
SYSTEMD_POD = P(
    "kubepods.slice/kubepods-burstable.slice/"
    "kubepods-burstable-pod0f6b3c2e_1d2a_4c5b_8e9f_a1b2c3d4e5f6.slice"
)
GUARANTEED_POD = P("kubepods.slice/kubepods-pod0f6b3c2e_1d2a_4c5b_8e9f_a1b2c3d4e5f6.slice")
CGROUPFS_POD = P(f"kubepods/besteffort/pod{UID}")


@pytest.mark.parametrize("pod", [SYSTEMD_POD, GUARANTEED_POD, CGROUPFS_POD])
def test_pod_cgroup_from_own_container_cgroup(pod):
    assert pod_cgroup_of_own(pod / "cri-containerd-abc123.scope") == pod
    assert pod_cgroup_of_own(pod) == pod


@pytest.mark.parametrize("own", [P("."), P("user.slice/session-1.scope"), P("kubepods.slice")])
def test_own_cgroup_outside_a_pod_says_what_to_set(own):
    with pytest.raises(SidecarSetupError, match="POD_UID"):
        pod_cgroup_of_own(own)


@pytest.mark.parametrize("pod", [SYSTEMD_POD, GUARANTEED_POD, CGROUPFS_POD])
def test_pod_cgroup_by_uid_in_any_layout(pod):
    other = P(
        "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"
        + "1" * 8
        + "_2222_3333_4444_"
        + "5" * 12
        + ".slice"
    )
    dirs = [P("kubepods.slice"), other, pod, pod / "cri-containerd-x.scope", P("system.slice")]
    assert pod_cgroup_for_uid(dirs, UID) == pod


def test_pod_cgroup_by_uid_not_found():
    with pytest.raises(SidecarSetupError, match="found 0"):
        pod_cgroup_for_uid([P("system.slice")], UID)


def test_workload_is_the_one_busy_container_that_is_neither_ours_nor_pause():
    own = SYSTEMD_POD / "cri-containerd-sidecar.scope"
    containers = [
        ContainerCgroup(SYSTEMD_POD / "cri-containerd-sandbox.scope", ("pause",)),
        ContainerCgroup(own, ("oomguard",)),
        ContainerCgroup(SYSTEMD_POD / "cri-containerd-app.scope", ("python3", "python3")),
        ContainerCgroup(SYSTEMD_POD / "cri-containerd-done.scope", ()),
    ]
    assert workload_cgroup(containers, own) == SYSTEMD_POD / "cri-containerd-app.scope"


def test_several_busy_containers_need_an_explicit_choice():
    containers = [
        ContainerCgroup(SYSTEMD_POD / "a.scope", ("python3",)),
        ContainerCgroup(SYSTEMD_POD / "b.scope", ("java",)),
    ]
    with pytest.raises(SidecarSetupError, match="--workload-cgroup"):
        workload_cgroup(containers, None)
    with pytest.raises(SidecarSetupError, match="none"):
        workload_cgroup([], None)


PROCESSES = [
    ProcessFacts(10, 5.0, "python -m pool --workers 4"),
    ProcessFacts(11, 6.0, "python -m pool.worker 1"),
    ProcessFacts(12, 7.0, "python -m pool.worker 2"),
    ProcessFacts(13, 7.5, "bash -c sleep 100"),
]


def test_default_selector_everything_but_the_oldest():
    selector = WorkerSelector()
    main = selector.choose_main(PROCESSES)
    assert main == 10
    assert [p.pid for p in PROCESSES if selector.is_worker(p, main)] == [11, 12, 13]


def test_pattern_selector_and_explicit_main():
    selector = WorkerSelector(re.compile(r"pool\.worker"), main_pid=11)
    main = selector.choose_main(PROCESSES)
    assert main == 11
    assert [p.pid for p in PROCESSES if selector.is_worker(p, main)] == [12]
    assert WorkerSelector().choose_main([]) is None


def test_memory_high_is_the_pod_limit_minus_the_reserve():
    assert pod_limit({P("a"): None, P("a/b"): 800 * MI, P("a/b/c"): 900 * MI}) == 800 * MI
    assert pod_limit({P("a"): None}) is None
    assert workers_memory_high(1000 * MI, 200 * MI, None) == 800 * MI
    assert workers_memory_high(1000 * MI, None, None) == 900 * MI  # 10%
    assert default_reserve(100 * MI) == 64 * MI  # at least 64Mi
    assert workers_memory_high(None, None, 300 * MI) == 300 * MI


def test_memory_high_refusals():
    with pytest.raises(SidecarSetupError, match="no memory limit"):
        workers_memory_high(None, None, None)
    with pytest.raises(SidecarSetupError, match="not below"):
        workers_memory_high(500 * MI, None, 500 * MI)
    with pytest.raises(SidecarSetupError, match="leaves nothing"):
        workers_memory_high(100 * MI, 100 * MI, None)


def test_in_a_private_cgroup_namespace_our_pid_tells_our_container():
    """containerd's default: /proc/self/cgroup says only "/", so the path cannot tell."""
    containers = [
        ContainerCgroup(SYSTEMD_POD / "sandbox.scope", ("pause",), (1,)),
        ContainerCgroup(SYSTEMD_POD / "sidecar.scope", ("oomguard",), (7,)),
        ContainerCgroup(SYSTEMD_POD / "app.scope", ("busybox", "python3"), (8, 9)),
    ]
    assert workload_cgroup(containers, None, own_pid=7) == SYSTEMD_POD / "app.scope"
    with pytest.raises(SidecarSetupError, match=r"sidecar\.scope \(oomguard\)"):
        workload_cgroup(containers, None)  # without the PID: ours looks like a workload


def test_the_sandbox_is_pid_1_whatever_its_name():
    """A sandbox image whose process is not called ``pause``; the app has already ended."""
    containers = [
        ContainerCgroup(SYSTEMD_POD / "sandbox.scope", ("busybox",), (1,)),
        ContainerCgroup(SYSTEMD_POD / "sidecar.scope", ("oomguard",), (7,)),
        ContainerCgroup(SYSTEMD_POD / "app.scope", (), ()),
    ]
    with pytest.raises(SidecarSetupError, match="found none"):
        workload_cgroup(containers, None, own_pid=7)


def test_no_workload_yet_is_told_apart_from_an_ambiguous_pod():
    """Only "none yet" is worth waiting for (a native sidecar starts first)."""
    sandbox = ContainerCgroup(SYSTEMD_POD / "sandbox.scope", ("sleep",), (1,))
    with pytest.raises(NoWorkloadYet):
        workload_cgroup([sandbox, ContainerCgroup(SYSTEMD_POD / "app.scope", ())], None)
    two = [
        ContainerCgroup(SYSTEMD_POD / "a.scope", ("python3",)),
        ContainerCgroup(SYSTEMD_POD / "b.scope", ("java",)),
    ]
    with pytest.raises(SidecarSetupError) as raised:
        workload_cgroup(two, None)
    assert not isinstance(raised.value, NoWorkloadYet)
