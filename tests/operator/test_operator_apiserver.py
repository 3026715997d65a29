"""The CRDs and the operator against the real control plane (etcd + kube-apiserver +
kube-controller-manager from tests/cluster)."""

from __future__ import annotations

import copy
import json
import uuid

import pytest
from crd_install import install_crds
from k8s_helpers import create_node, wait_for
from kopf.testing import KopfRunner
from kubernetes.client import ApiextensionsV1Api, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from oomguard.operator import handlers

pytestmark = pytest.mark.apiserver

GROUP, VERSION = "oomguard.io", "v1alpha1"
POLICIES, RESERVES = "memoryreservepolicies", "nodememoryreserves"
GI = 2**30


@pytest.fixture(scope="module")
def crds(control_plane):
    return install_crds(control_plane.api_client)


@pytest.fixture
def custom(control_plane, crds) -> CustomObjectsApi:
    return CustomObjectsApi(control_plane.api_client)


def policy(name, spec):
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MemoryReservePolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


def test_crds_install_with_short_names_and_columns(control_plane, crds):
    assert crds == ["memoryreservepolicies.oomguard.io", "nodememoryreserves.oomguard.io"]
    ext = ApiextensionsV1Api(control_plane.api_client)
    mrp = ext.read_custom_resource_definition("memoryreservepolicies.oomguard.io")
    nmr = ext.read_custom_resource_definition("nodememoryreserves.oomguard.io")
    assert mrp.spec.names.short_names == ["mrp"]
    assert nmr.spec.names.short_names == ["nmr"]
    assert mrp.spec.scope == nmr.spec.scope == "Cluster"
    version = mrp.spec.versions[0]
    assert version.subresources.status is not None
    assert [c.name for c in version.additional_printer_columns][:3] == [
        "Priority",
        "Absolute",
        "Percent",
    ]


VALID = {"reserve": {"absolute": "1Gi"}}

INVALID = [
    (
        {"reserve": {"absolute": "1Gi", "percent": 10}},
        "reserve: set exactly one of absolute or percent",
    ),
    ({"reserve": {}}, "reserve: set exactly one of absolute or percent"),
    ({}, "spec.reserve: Required value"),
    ({"reserve": {"percent": 0}}, "reserve.percent must be greater than 0 and at most 50"),
    ({"reserve": {"percent": 100}}, "reserve.percent must be greater than 0 and at most 50"),
    ({"reserve": {"percent": 10, "min": "2Gi", "max": "1Gi"}}, "reserve: min must not exceed max"),
    ({"reserve": {"percent": 10, "min": 3 * GI, "max": "2Gi"}}, "reserve: min must not exceed max"),
    ({"reserve": {"absolute": "1Gi", "max": "2Gi"}}, "min and max bound a percent reserve"),
    ({"reserve": {"absolute": "0"}}, "reserve.absolute must be a positive memory quantity"),
    ({"reserve": {"absolute": -5}}, "reserve.absolute must be a positive memory quantity"),
    ({"reserve": {"absolute": "lots"}}, "spec.reserve.absolute: Invalid value"),
    (
        {**VALID, "monitor": {"pressure": {"windowMilliseconds": 100}}},
        "monitor.pressure.windowMilliseconds must be between 500 and 10000",
    ),
    (
        {**VALID, "monitor": {"pressure": {"windowMilliseconds": 20000}}},
        "monitor.pressure.windowMilliseconds must be between 500 and 10000",
    ),
    (
        {**VALID, "monitor": {"pressure": {"stallMilliseconds": 2000, "windowMilliseconds": 1000}}},
        "monitor.pressure.stallMilliseconds must not exceed windowMilliseconds",
    ),
    (
        {**VALID, "monitor": {"pressure": {"stallMilliseconds": 5000}}},
        "monitor.pressure.stallMilliseconds must not exceed windowMilliseconds",
    ),
    (
        {**VALID, "monitor": {"threshold": {"usagePercent": 0}}},
        "monitor.threshold.usagePercent must be between 50 and 100",
    ),
    (
        {**VALID, "monitor": {"threshold": {"usagePercent": 100.5}}},
        "monitor.threshold.usagePercent must be between 50 and 100",
    ),
    (
        {**VALID, "monitor": {"event": {"enabled": False}, "threshold": {"enabled": False}}},
        "monitor: at least one of event, threshold or pressure must stay enabled",
    ),
    (
        {**VALID, "monitor": {"hostMemory": {"enabled": True, "usagePercent": 0}}},
        "monitor.hostMemory.usagePercent must be between 50 and 100",
    ),
    (
        {**VALID, "monitor": {"hostMemory": {"intervalMilliseconds": 5}}},
        "monitor.hostMemory.intervalMilliseconds must be between 10 and 60000",
    ),
    ({**VALID, "eviction": {"policy": "OldestFirst"}}, 'Unsupported value: "OldestFirst"'),
    (
        {**VALID, "eviction": {"gracePeriodSeconds": -1}},
        "eviction.gracePeriodSeconds must be between 0 and 300",
    ),
    ({**VALID, "eviction": {"buffer": -1}}, "eviction.buffer must be between 0 and 4Gi"),
    # the safe envelope (docs/safety.md): values that would drain a node
    ({"reserve": {"percent": 99.9}}, "reserve.percent must be greater than 0 and at most 50"),
    ({"reserve": {"percent": 50.1}}, "reserve.percent must be greater than 0 and at most 50"),
    (
        {**VALID, "monitor": {"threshold": {"usagePercent": 5}}},
        "monitor.threshold.usagePercent must be between 50 and 100",
    ),
    (
        {**VALID, "monitor": {"threshold": {"usagePercent": 49.9}}},
        "monitor.threshold.usagePercent must be between 50 and 100",
    ),
    (
        {**VALID, "monitor": {"hostMemory": {"usagePercent": 10}}},
        "monitor.hostMemory.usagePercent must be between 50 and 100",
    ),
    (
        {**VALID, "eviction": {"gracePeriodSeconds": 301}},
        "eviction.gracePeriodSeconds must be between 0 and 300",
    ),
    (
        {**VALID, "eviction": {"gracePeriodSeconds": 86400}},
        "eviction.gracePeriodSeconds must be between 0 and 300",
    ),
    ({**VALID, "eviction": {"buffer": "5Gi"}}, "eviction.buffer must be between 0 and 4Gi"),
    (
        {**VALID, "eviction": {"pressureCooldownSeconds": -1}},
        "eviction.pressureCooldownSeconds must be between 0 and 3600",
    ),
    (
        {**VALID, "eviction": {"pressureCooldownSeconds": 3601}},
        "eviction.pressureCooldownSeconds must be between 0 and 3600",
    ),
    ({**VALID, "eviction": {"buffer": 4 * GI + 1}}, "eviction.buffer must be between 0 and 4Gi"),
    (
        {**VALID, "eviction": {"maxEvictionsPerMinute": 0}},
        "eviction.maxEvictionsPerMinute must be between 1 and 600",
    ),
    (
        {**VALID, "eviction": {"killFallback": {"waitSeconds": -1}}},
        "eviction.killFallback.waitSeconds must be between 0 and 3600",
    ),
    (
        {**VALID, "nodeSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}},
        "In and NotIn need at least one value",
    ),
    (
        {
            **VALID,
            "nodeSelector": {
                "matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]
            },
        },
        "Exists and DoesNotExist take no values",
    ),
]


@pytest.mark.parametrize(("spec", "message"), INVALID, ids=[m[:40] for _, m in INVALID])
def test_server_rejects_invalid_policies(custom, spec, message):
    name = f"bad-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ApiException) as caught:
        custom.create_cluster_custom_object(GROUP, VERSION, POLICIES, policy(name, spec))
    assert caught.value.status == 422, caught.value.body
    assert message in json.loads(caught.value.body)["message"]


@pytest.mark.parametrize(
    "spec",
    [
        {"reserve": {"absolute": 2 * GI}},
        {"reserve": {"absolute": "1.5Gi"}},
        {"reserve": {"absolute": "1e9"}},
        {"reserve": {"percent": 10, "min": "512Mi", "max": "10Gi"}},
        {"reserve": {"percent": 7.5, "min": 0, "max": GI}},
        # the envelope's edges are inside it
        {
            "reserve": {"percent": 50},
            "monitor": {"threshold": {"usagePercent": 50}, "hostMemory": {"usagePercent": 50}},
            "eviction": {"gracePeriodSeconds": 300, "buffer": "4Gi"},
        },
        {
            "priority": -3,
            "reserve": {"percent": 10},
            "monitor": {
                "event": {"enabled": False},
                "threshold": {"enabled": False},
                "pressure": {"enabled": True, "stallMilliseconds": 500, "windowMilliseconds": 500},
            },
            "eviction": {
                "policy": "QoSThenNewest",
                "gracePeriodSeconds": 0,
                "buffer": "0",
                "maxEvictionsPerMinute": 600,
                "killFallback": {"enabled": False, "waitSeconds": 0},
                "protectedNamespaces": ["kube-system", "monitoring"],
                "protectDaemonSetPods": False,
            },
            "dryRun": True,
        },
    ],
)
def test_server_accepts_valid_policies(custom, spec):
    name = f"ok-{uuid.uuid4().hex[:8]}"
    created = custom.create_cluster_custom_object(GROUP, VERSION, POLICIES, policy(name, spec))
    try:
        assert created["spec"]["reserve"] == spec["reserve"]
        assert created["spec"]["priority"] == spec.get("priority", 0)  # defaulted by the schema
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, POLICIES, name)


def test_reserve_name_must_be_its_node(custom):
    from oomguard.monitor.settings import NodeSettings

    spec = NodeSettings("node-x", 8 * GI, GI, source_policy="p").to_spec()
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "NodeMemoryReserve",
        "metadata": {"name": "node-y"},
        "spec": spec,
    }
    with pytest.raises(ApiException) as caught:
        custom.create_cluster_custom_object(GROUP, VERSION, RESERVES, body)
    assert "metadata.name must equal spec.nodeName" in json.loads(caught.value.body)["message"]


def test_status_fields_survive_pruning(custom):
    name = f"st-{uuid.uuid4().hex[:8]}"
    custom.create_cluster_custom_object(GROUP, VERSION, POLICIES, policy(name, VALID))
    try:
        status = {
            "observedGeneration": 1,
            "nodesSelected": 2,
            "nodesWon": 1,
            "conflictingNodes": ["a"],
            "conflictingNodeCount": 1,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Resolved",
                    "message": "m",
                    "observedGeneration": 1,
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
        }
        custom.patch_cluster_custom_object_status(
            GROUP,
            VERSION,
            POLICIES,
            name,
            {"status": status},
            _content_type="application/merge-patch+json",
        )
        read = custom.get_cluster_custom_object(GROUP, VERSION, POLICIES, name)
        assert read["status"] == status
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, POLICIES, name)


# ------------------------------------------------------------------ the operator under kopf


def reserve_of(custom, node):
    try:
        return custom.get_cluster_custom_object(GROUP, VERSION, RESERVES, node)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def wait_reserve(custom, node, policy_name, reserve_bytes, timeout=30):
    def probe():
        obj = reserve_of(custom, node)
        spec = (obj or {}).get("spec") or {}
        if spec.get("sourcePolicy") == policy_name and spec.get("reserveBytes") == reserve_bytes:
            return obj
        return None

    try:
        return wait_for(f"{node} reserved by {policy_name}", probe, timeout=timeout)
    except AssertionError:
        raise AssertionError(f"{node}: {reserve_of(custom, node)}") from None


def policy_status(custom, name):
    return custom.get_cluster_custom_object(GROUP, VERSION, POLICIES, name).get("status") or {}


def conditions(status):
    return {c["type"]: c for c in status.get("conditions") or []}


def test_operator_resolves_relabels_falls_back_and_collects(control_plane, custom, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(control_plane.kubeconfig))
    monkeypatch.setenv("OOMGUARD_OPERATOR_RESYNC_SECONDS", "5")
    monkeypatch.setenv("OOMGUARD_OPERATOR_DEBOUNCE_SECONDS", "0.2")
    core = CoreV1Api(control_plane.api_client)
    run = uuid.uuid4().hex[:6]
    mine = {"oomguard-test": run}  # every selector is scoped to this test's nodes
    n1 = create_node(
        core,
        f"db-{run}",
        labels={**mine, "role": "db"},
        capacity={"cpu": "4", "memory": "8Gi", "pods": "110"},
    )
    n2 = create_node(
        core,
        f"web-{run}",
        labels={**mine, "role": "web"},
        capacity={"cpu": "4", "memory": "16Gi", "pods": "110"},
    )
    n3 = create_node(
        core,
        f"edge-{run}",
        labels={**mine, "role": "db", "zone": "x"},
        capacity={"cpu": "4", "memory": "8Gi", "pods": "110"},
    )
    base, db, zone = f"base-{run}", f"a-db-{run}", f"b-zone-{run}"
    specs = {
        base: {"nodeSelector": {"matchLabels": mine}, "reserve": {"absolute": "1Gi"}},
        db: {
            "priority": 10,
            "nodeSelector": {"matchLabels": {**mine, "role": "db"}},
            "reserve": {"percent": 25, "min": "1Gi", "max": "3Gi"},
        },
        zone: {
            "priority": 10,
            "nodeSelector": {
                "matchLabels": mine,
                "matchExpressions": [{"key": "zone", "operator": "In", "values": ["x"]}],
            },
            "reserve": {"absolute": "2Gi"},
            "dryRun": True,
        },
    }
    args = ["run", "--standalone", "--all-namespaces", "-m", "oomguard.operator.handlers"]
    with KopfRunner(args, timeout=120) as runner:
        for name, spec in specs.items():
            custom.create_cluster_custom_object(
                GROUP, VERSION, POLICIES, policy(name, copy.deepcopy(spec))
            )

        # Two overlapping policies: db (priority 10) beats base; db ties with zone on edge,
        # and the name sorting first (a-db) wins there.
        r1 = wait_reserve(custom, n1.metadata.name, db, 2 * GI)
        wait_reserve(custom, n2.metadata.name, base, GI)
        wait_reserve(custom, n3.metadata.name, db, 2 * GI)
        assert r1["metadata"]["ownerReferences"] == [
            {"apiVersion": "v1", "kind": "Node", "name": n1.metadata.name, "uid": n1.metadata.uid}
        ]

        def statuses_settled():
            st = {name: policy_status(custom, name) for name in specs}
            return (
                st
                if all(s.get("observedGeneration") == 1 for s in st.values())
                and (st[db].get("nodesWon") == 2 and st[base].get("nodesWon") == 1)
                else None
            )

        st = wait_for("policy statuses", statuses_settled, timeout=30)
        assert (st[base]["nodesSelected"], st[base]["nodesWon"]) == (3, 1)
        assert (st[db]["nodesSelected"], st[db]["nodesWon"]) == (2, 2)
        assert (st[zone]["nodesSelected"], st[zone]["nodesWon"]) == (1, 0)
        assert conditions(st[base])["Ready"]["status"] == "True"
        assert conditions(st[base])["Conflict"]["status"] == "False"
        for name in (db, zone):
            conflict = conditions(st[name])["Conflict"]
            assert conflict["status"] == "True", st[name]
            assert conflict["reason"] == "EqualPriority"
            assert n3.metadata.name in conflict["message"]
            assert st[name]["conflictingNodes"] == [n3.metadata.name]

        # Relabelling web as db moves it to the db policy: 25% of 16Gi clamped to 3Gi.
        core.patch_node(n2.metadata.name, {"metadata": {"labels": {"role": "db"}}})
        wait_reserve(custom, n2.metadata.name, db, 3 * GI)

        # Deleting the db policy falls back: db/web to base, edge to zone.
        custom.delete_cluster_custom_object(GROUP, VERSION, POLICIES, db)
        wait_reserve(custom, n1.metadata.name, base, GI)
        wait_reserve(custom, n2.metadata.name, base, GI)
        edge = wait_reserve(custom, n3.metadata.name, zone, 2 * GI)
        assert edge["spec"]["dryRun"] is True
        wait_for(
            "zone policy without conflict",
            lambda: (
                conditions(policy_status(custom, zone)).get("Conflict", {}).get("status") == "False"
            ),
            timeout=30,
        )

        # Deleting the base policy leaves the web node with no policy: its reserve goes.
        custom.delete_cluster_custom_object(GROUP, VERSION, POLICIES, base)
        wait_for("web reserve deleted", lambda: reserve_of(custom, n2.metadata.name) is None)

        # Deleting a Node: the garbage collector removes its NodeMemoryReserve.
        core.delete_node(n3.metadata.name)
        wait_for("edge reserve collected", lambda: reserve_of(custom, n3.metadata.name) is None)

        reconciler = handlers._running.reconciler
        assert reconciler is not None
        writes = reconciler._metrics.writes
        created = writes.labels(kind="NodeMemoryReserve", verb="create")._value.get()
        assert created == 3  # one per node, however many events arrived
        custom.delete_cluster_custom_object(GROUP, VERSION, POLICIES, zone)
        wait_for("db reserve deleted", lambda: reserve_of(custom, n1.metadata.name) is None)
    assert runner.exception is None, runner.exception
    assert runner.exit_code == 0
    for node in (n1, n2):
        core.delete_node(node.metadata.name)
