from pathlib import PurePosixPath as P

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oomguard.monitor.kube.pod_cgroups import (
    DEFAULT_KUBEPODS,
    CgroupDriver,
    KubepodsLocation,
    PodCgroup,
    QosClass,
    UnknownDriverError,
    detect_driver,
    driver_of_path,
    parse_pod_cgroups,
    pod_cgroup_path,
    qos_cgroup_path,
)

UID = "0a1b2c3d-4e5f-6789-abcd-ef0123456789"
UID_ = UID.replace("-", "_")
SYSTEMD = KubepodsLocation(CgroupDriver.SYSTEMD, P("kubepods.slice"))
CGROUPFS = KubepodsLocation(CgroupDriver.CGROUPFS, P("kubepods"))
KIND = KubepodsLocation(CgroupDriver.SYSTEMD, P("kubelet.slice/kubelet-kubepods.slice"))
CID = "f" * 64


@pytest.mark.parametrize(
    ("location", "qos", "expected"),
    [
        (SYSTEMD, QosClass.GUARANTEED, f"kubepods.slice/kubepods-pod{UID_}.slice"),
        (
            SYSTEMD,
            QosClass.BURSTABLE,
            f"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice",
        ),
        (
            SYSTEMD,
            QosClass.BEST_EFFORT,
            f"kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice",
        ),
        (CGROUPFS, QosClass.GUARANTEED, f"kubepods/pod{UID}"),
        (CGROUPFS, QosClass.BURSTABLE, f"kubepods/burstable/pod{UID}"),
        (CGROUPFS, QosClass.BEST_EFFORT, f"kubepods/besteffort/pod{UID}"),
        (
            KIND,
            QosClass.BURSTABLE,
            "kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/"
            f"kubelet-kubepods-burstable-pod{UID_}.slice",
        ),
        (
            KIND,
            QosClass.GUARANTEED,
            f"kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod{UID_}.slice",
        ),
    ],
)
def test_pod_cgroup_path(location, qos, expected):
    assert pod_cgroup_path(UID, qos, location) == P(expected)


def test_qos_cgroup_paths():
    assert qos_cgroup_path(QosClass.GUARANTEED, SYSTEMD) == P("kubepods.slice")
    assert qos_cgroup_path(QosClass.BURSTABLE, CGROUPFS) == P("kubepods/burstable")


@pytest.mark.parametrize(
    ("entries", "driver"),
    [
        ({"kubepods.slice", "system.slice", "init.scope"}, CgroupDriver.SYSTEMD),
        ({"kubepods", "system.slice"}, CgroupDriver.CGROUPFS),
    ],
)
def test_detect_driver(entries, driver):
    assert detect_driver(entries) is driver
    assert DEFAULT_KUBEPODS[driver].name in entries


@pytest.mark.parametrize("entries", [set(), {"system.slice"}, {"kubepods", "kubepods.slice"}])
def test_detect_driver_refuses_to_guess(entries):
    with pytest.raises(UnknownDriverError):
        detect_driver(entries)


def test_driver_of_explicit_path():
    assert driver_of_path(P("kubelet.slice/kubelet-kubepods.slice")) is CgroupDriver.SYSTEMD
    assert driver_of_path(P("custom/kubepods")) is CgroupDriver.CGROUPFS


def _tree(location, pods, runtime_children):
    """A walk of kubepods: the QoS parents, each pod and the given children of each pod."""
    dirs = [location.path] + [qos_cgroup_path(q, location) for q in QosClass]
    for uid, qos in pods:
        pod = pod_cgroup_path(uid, qos, location)
        dirs.append(pod)
        dirs.extend(pod / child for child in runtime_children)
    return dirs


UIDS = [
    ("11111111-1111-1111-1111-111111111111", QosClass.GUARANTEED),
    ("22222222-2222-2222-2222-222222222222", QosClass.BURSTABLE),
    ("33333333-3333-3333-3333-333333333333", QosClass.BEST_EFFORT),
    ("d41d8cd98f00b204e9800998ecf8427e", QosClass.BURSTABLE),  # a static pod's config hash
]


@pytest.mark.parametrize(
    ("location", "children", "expected_ids"),
    [
        (SYSTEMD, [f"cri-containerd-{CID}.scope"], (CID,)),
        (SYSTEMD, [f"crio-{CID}.scope", f"crio-conmon-{CID}.scope"], (CID,)),
        (SYSTEMD, [f"docker-{CID}.scope"], (CID,)),
        (SYSTEMD, [], ()),
        (
            KIND,
            [f"cri-containerd-{CID}.scope", f"cri-containerd-{'a' * 64}.scope"],
            ("a" * 64, CID),
        ),
        (CGROUPFS, [CID], (CID,)),
        (CGROUPFS, [f"crio-{CID}", f"crio-conmon-{CID}"], (CID,)),
    ],
)
def test_parse_round_trips_every_qos_and_runtime(location, children, expected_ids):
    parsed = parse_pod_cgroups(_tree(location, UIDS, children), location)
    assert parsed == {
        uid: PodCgroup(uid, qos, pod_cgroup_path(uid, qos, location), expected_ids)
        for uid, qos in UIDS
    }


def test_parse_ignores_what_is_not_a_pod():
    dirs = [
        P("kubepods.slice"),
        P("kubepods.slice/kubepods-burstable.slice"),
        P("kubepods.slice/kubepods-burstable.slice/something-else.slice"),
        P("kubepods.slice/kubepods-besteffort-pod1234.slice"),  # wrong parent for its name
        P("system.slice/kubepods-pod1234.slice"),  # outside kubepods
        P("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod.slice"),  # no uid
        P("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podxyz.slice"),  # not hex
    ]
    assert parse_pod_cgroups(dirs, SYSTEMD) == {}


def test_parse_nested_deeper_dirs_are_not_containers_of_the_pod():
    pod = pod_cgroup_path(UID, QosClass.BURSTABLE, SYSTEMD)
    dirs = [pod, pod / f"cri-containerd-{CID}.scope", pod / f"cri-containerd-{CID}.scope" / "x"]
    assert parse_pod_cgroups(dirs, SYSTEMD)[UID].container_ids == (CID,)


def test_parse_missing_cgroups_give_missing_entries():
    assert parse_pod_cgroups([P("kubepods.slice")], SYSTEMD) == {}
    assert parse_pod_cgroups([], CGROUPFS) == {}


@given(
    uid=st.uuids().map(str),
    qos=st.sampled_from(list(QosClass)),
    location=st.sampled_from([SYSTEMD, CGROUPFS, KIND]),
)
def test_forward_and_reverse_agree(uid, qos, location):
    path = pod_cgroup_path(uid, qos, location)
    assert parse_pod_cgroups([path], location) == {uid: PodCgroup(uid, qos, path)}
