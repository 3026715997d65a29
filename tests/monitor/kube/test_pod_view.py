"""The pod view's blind spots, on plain data: which cgroups no pod object matches, when to
ask for a relist, when the view is blind, and which pods known from their cgroup alone may
be killed."""

import uuid

import pytest
from monitor_fakes import pod

from oomguard.monitor.kube.pod_cgroups import QosClass
from oomguard.monitor.kube.pod_view import (
    BLIND_AFTER_SECONDS,
    RELIST_MIN_INTERVAL,
    UNMATCHED_GRACE,
    CgroupPod,
    is_api_uid,
    kill_only_candidates,
    kill_only_protection,
    lasting_unmatched,
    pod_view_blind,
    relist_due,
    unmatched_cgroups,
)

STATIC_UID = "5d6f0a7e8b9c0d1e2f3a4b5c6d7e8f90"  # the kubelet's config hash


def uid(name):
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, name))


def cgroup_pod(name, started, memory, qos=QosClass.BURSTABLE, pod_uid=None):
    return CgroupPod(pod_uid or uid(name), qos, f"kubepods.slice/{name}", started, memory)


# -- a cgroup without a pod object ---------------------------------------------------------


def test_cgroups_without_a_pod_object_are_unmatched():
    known = pod("known", 1)
    assert unmatched_cgroups([known.uid, uid("stray")], [known]) == {uid("stray")}
    assert unmatched_cgroups([known.uid], [known]) == frozenset()
    assert unmatched_cgroups([], []) == frozenset()


def test_a_static_pods_cgroup_is_matched_by_its_mirror_pod():
    mirror = pod("etcd", 1, annotations={"kubernetes.io/config.mirror": STATIC_UID})
    assert unmatched_cgroups([STATIC_UID], [mirror]) == frozenset()
    hashed = pod("apiserver", 1, annotations={"kubernetes.io/config.hash": STATIC_UID})
    assert unmatched_cgroups([STATIC_UID], [hashed]) == frozenset()


def test_a_cgroup_counts_as_unmatched_after_the_grace_only():
    seen, lasting = lasting_unmatched({"a"}, {}, 100.0)
    assert (seen, lasting) == ({"a": 100.0}, frozenset())
    seen, lasting = lasting_unmatched({"a", "b"}, seen, 100.0 + UNMATCHED_GRACE)
    assert seen == {"a": 100.0, "b": 100.0 + UNMATCHED_GRACE}
    assert lasting == {"a"}
    seen, lasting = lasting_unmatched({"b"}, seen, 200.0)  # "a" got its pod: forgotten
    assert (seen, lasting) == ({"b": 100.0 + UNMATCHED_GRACE}, {"b"})


def test_relist_at_most_once_per_interval_and_only_when_connected():
    stray = {uid("stray")}
    assert relist_due(stray, True, None, 100.0)  # first time: at once
    assert not relist_due(stray, True, 100.0, 100.0 + RELIST_MIN_INTERVAL - 0.1)  # bounded
    assert relist_due(stray, True, 100.0, 100.0 + RELIST_MIN_INTERVAL)
    assert not relist_due(set(), True, None, 100.0)  # nothing unmatched
    assert not relist_due(stray, False, None, 100.0)  # disconnected: it lists on reconnect


def test_a_cgroup_that_never_gets_a_pod_costs_one_relist_per_interval():
    asked_at, asks = None, 0
    for step in range(600):  # ten minutes of 1 s steps
        now = float(step)
        if relist_due({uid("stray")}, True, asked_at, now):
            asked_at, asks = now, asks + 1
    assert asks == 600 // int(RELIST_MIN_INTERVAL)


# -- a blind pod view ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ever_synced", "connected", "since", "blind"),
    [
        (False, False, 0.0, True),  # started with the API down: blind at once
        (True, True, 1000.0, False),
        (True, False, BLIND_AFTER_SECONDS, False),  # a short outage: the watch repairs it
        (True, False, BLIND_AFTER_SECONDS + 0.1, True),
    ],
)
def test_blind_when_never_listed_or_disconnected_past_the_bound(
    ever_synced, connected, since, blind
):
    assert pod_view_blind(ever_synced, connected, 1000.0 - since, 1000.0) is blind


def test_only_uuids_are_api_pods():
    assert is_api_uid(uid("a"))
    assert not is_api_uid(STATIC_UID)
    assert not is_api_uid("pod")


def test_kill_only_protection_spares_what_the_kernel_and_the_agent_must_spare():
    assert kill_only_protection(cgroup_pod("b", 1, 1), None) is None
    assert kill_only_protection(cgroup_pod("b", 1, 1, QosClass.BEST_EFFORT), None) is None
    assert "Guaranteed" in kill_only_protection(cgroup_pod("g", 1, 1, QosClass.GUARANTEED), None)
    assert "static" in kill_only_protection(cgroup_pod("s", 1, 1, pod_uid=STATIC_UID), None)
    assert "itself" in kill_only_protection(cgroup_pod("me", 1, 1), uid("me"))


def test_kill_only_candidates_only_at_the_line_and_only_for_pods_without_an_object():
    known = pod("known", 5)
    cgroups = [
        cgroup_pod("known", 5, 100, pod_uid=known.uid),
        cgroup_pod("new", 9, 200),
        cgroup_pod("guaranteed", 10, 300, QosClass.GUARANTEED),
    ]
    assert kill_only_candidates(cgroups, [known], None, usage=999, line=1000) == []
    found = {c.name: c for c in kill_only_candidates(cgroups, [known], None, 1000, 1000)}
    assert set(found) == {"cgroup:kubepods.slice/new", "cgroup:kubepods.slice/guaranteed"}
    new = found["cgroup:kubepods.slice/new"]
    assert (new.id, new.started_at, new.memory_bytes) == (uid("new"), 9, 200)
    assert new.kill_only and not new.protected
    assert found["cgroup:kubepods.slice/guaranteed"].protected  # held memory still said
