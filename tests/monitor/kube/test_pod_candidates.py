from datetime import UTC, datetime

import pytest

from oomguard.monitor.decision.candidate import Candidate
from oomguard.monitor.kube.pod_candidates import (
    CRITICAL_PRIORITY,
    PodInfo,
    ProtectionRules,
    parse_time,
    pod_candidates,
    pod_info_from_dict,
    protection_reason,
    qos_from_spec,
)
from oomguard.monitor.kube.pod_cgroups import QosClass


def pod_dict(
    name="p",
    uid="u1",
    namespace="default",
    start="2024-01-02T03:04:05Z",
    created="2024-01-02T03:04:00Z",
    qos="Burstable",
    **extra,
):
    metadata = {"name": name, "uid": uid, "namespace": namespace}
    if created:
        metadata["creationTimestamp"] = created
    metadata.update(extra.pop("metadata", {}))
    status = {"phase": "Running"}
    if qos:
        status["qosClass"] = qos
    if start:
        status["startTime"] = start
    status.update(extra.pop("status", {}))
    spec = {"nodeName": "node-a", "containers": [{"name": "c"}]}
    spec.update(extra.pop("spec", {}))
    assert not extra
    return {"metadata": metadata, "spec": spec, "status": status}


def info(**kwargs):
    defaults = dict(
        uid="u",
        namespace="default",
        name="p",
        node_name="n",
        qos=QosClass.BURSTABLE,
        started_at=100.0,
        has_start_time=True,
    )
    defaults.update(kwargs)
    return PodInfo(**defaults)


def test_parse_time_is_utc_epoch():
    assert (
        parse_time("2024-01-02T03:04:05Z") == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    )


def test_pod_info_reads_the_fields_that_matter():
    pod = pod_info_from_dict(
        pod_dict(
            metadata={
                "deletionTimestamp": "2024-01-02T03:05:00Z",
                "ownerReferences": [{"kind": "ReplicaSet", "name": "rs"}],
                "annotations": {"a": "b"},
            },
            spec={"priority": 1000},
        )
    )
    assert pod == PodInfo(
        uid="u1",
        namespace="default",
        name="p",
        node_name="node-a",
        qos=QosClass.BURSTABLE,
        started_at=parse_time("2024-01-02T03:04:05Z"),
        has_start_time=True,
        priority=1000,
        deleting=True,
        phase="Running",
        owner_kinds=("ReplicaSet",),
        annotations={"a": "b"},
    )
    assert pod.key == "default/p"


def test_pod_without_start_time_falls_back_to_creation_time():
    pod = pod_info_from_dict(pod_dict(start=None))
    assert pod.started_at == parse_time("2024-01-02T03:04:00Z")
    assert not pod.has_start_time


def test_pod_without_any_time_sorts_as_oldest():
    pod = pod_info_from_dict(pod_dict(start=None, created=None))
    assert pod.started_at == 0.0


@pytest.mark.parametrize("qos", list(QosClass))
def test_status_qos_class_is_used(qos):
    assert pod_info_from_dict(pod_dict(qos=qos.value)).qos is qos


@pytest.mark.parametrize(
    ("containers", "expected"),
    [
        ([{"name": "a"}], QosClass.BEST_EFFORT),
        ([{"name": "a", "resources": {}}], QosClass.BEST_EFFORT),
        ([{"name": "a", "resources": {"requests": {"memory": "1Gi"}}}], QosClass.BURSTABLE),
        (
            [{"name": "a", "resources": {"limits": {"memory": "1Gi", "cpu": "1"}}}],
            QosClass.GUARANTEED,
        ),
        (
            [
                {
                    "name": "a",
                    "resources": {
                        "limits": {"memory": "1Gi", "cpu": "1"},
                        "requests": {"memory": "1Gi", "cpu": "500m"},
                    },
                }
            ],
            QosClass.BURSTABLE,
        ),
        (
            [
                {"name": "a", "resources": {"limits": {"memory": "1Gi", "cpu": "1"}}},
                {"name": "b"},
            ],
            QosClass.BURSTABLE,
        ),
        ([{"name": "a", "resources": {"limits": {"memory": "1Gi"}}}], QosClass.BURSTABLE),
        ([], QosClass.BEST_EFFORT),
    ],
)
def test_qos_from_spec(containers, expected):
    assert qos_from_spec({"containers": containers}) is expected
    assert pod_info_from_dict(pod_dict(qos=None, spec={"containers": containers})).qos is expected


RULES = ProtectionRules(
    self_uid="me",
    protected_namespaces=frozenset({"kube-system"}),
    annotation_namespaces=frozenset({"*"}),
)


@pytest.mark.parametrize(
    ("pod", "reason_part"),
    [
        (info(annotations={"kubernetes.io/config.mirror": "abc"}), "mirror"),
        (info(priority=CRITICAL_PRIORITY), "critical"),
        (info(priority=2_000_001_000), "critical"),
        (info(uid="me"), "itself"),
        (info(annotations={"oomguard.io/protect": "true"}), "oomguard.io/protect"),
        (info(annotations={"oomguard.io/protect": "True"}), "oomguard.io/protect"),
        (info(namespace="kube-system"), "namespace kube-system"),
        (info(owner_kinds=("DaemonSet",)), "DaemonSet"),
    ],
)
def test_protected_pods(pod, reason_part):
    reason = protection_reason(pod, RULES)
    assert reason is not None and reason_part in reason


@pytest.mark.parametrize(
    "pod",
    [
        info(),
        info(priority=CRITICAL_PRIORITY - 1),
        info(annotations={"oomguard.io/protect": "false"}),
        info(namespace="apps"),
        info(owner_kinds=("ReplicaSet",)),
    ],
)
def test_unprotected_pods(pod):
    assert protection_reason(pod, RULES) is None


@pytest.mark.parametrize(
    ("allowed", "protected"),
    [
        (frozenset(), False),  # the default: a pod author cannot make a pod unevictable
        (frozenset({"other"}), False),
        (frozenset({"apps"}), True),
        (frozenset({"*"}), True),
    ],
)
def test_protect_annotation_honoured_only_in_allowed_namespaces(allowed, protected):
    pod = info(namespace="apps", annotations={"oomguard.io/protect": "true"})
    rules = ProtectionRules(annotation_namespaces=allowed)
    assert (protection_reason(pod, rules) is not None) is protected


def test_daemonset_pods_may_be_allowed():
    pod = info(owner_kinds=("DaemonSet",))
    assert protection_reason(pod, ProtectionRules(protect_daemonset_pods=False)) is None


def test_self_by_key():
    assert protection_reason(
        info(namespace="og", name="agent"), ProtectionRules(self_key="og/agent")
    )


def test_candidates_carry_memory_start_protection_and_dying():
    pods = [
        info(uid="a", name="a", started_at=1.0),
        info(uid="b", name="b", started_at=2.0, deleting=True),
        info(uid="c", name="c", started_at=3.0, annotations={"oomguard.io/protect": "true"}),
        info(uid="d", name="d", started_at=4.0),  # no cgroup found: holds nothing
        info(uid="e", name="e", started_at=5.0, phase="Succeeded"),
        info(uid="f", name="f", started_at=6.0, phase="Failed"),
    ]
    memory = {"a": 10, "b": 20, "c": 30, "e": 50}
    rules = ProtectionRules(annotation_namespaces=frozenset({"default"}))
    assert pod_candidates(pods, memory, rules) == [
        Candidate("a", "default/a", 1.0, 10),
        Candidate("b", "default/b", 2.0, 20, dying=True),
        Candidate("c", "default/c", 3.0, 30, protected=True),
        Candidate("d", "default/d", 4.0, 0),
    ]


def test_qos_preference_ranks():
    pods = [
        info(uid="g", qos=QosClass.GUARANTEED),
        info(uid="b", qos=QosClass.BURSTABLE),
        info(uid="e", qos=QosClass.BEST_EFFORT),
    ]
    ranks = {c.id: c.preference_rank for c in pod_candidates(pods, {}, ProtectionRules(), True)}
    assert ranks == {"e": 0, "b": 1, "g": 2}
    plain = pod_candidates(pods, {}, ProtectionRules(), False)
    assert {c.preference_rank for c in plain} == {0}
