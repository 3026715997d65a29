"""The operator keeps oomguard.io/memory-pressure:NoSchedule on Nodes whose agent reports
MemoryPressure, against the real control plane (tests/cluster)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from crd_install import install_crds
from k8s_helpers import create_node, wait_for
from kopf.testing import KopfRunner
from kubernetes.client import CoreV1Api, CustomObjectsApi, V1Taint

from oomguard.operator import pressure_taint_handlers

pytestmark = pytest.mark.apiserver

GROUP, VERSION = "oomguard.io", "v1alpha1"
POLICIES, RESERVES = "memoryreservepolicies", "nodememoryreserves"
KEY = "oomguard.io/memory-pressure"
ARGS = ["run", "--standalone", "--all-namespaces", "-m", "oomguard.operator.handlers"]


@pytest.fixture(scope="module")
def crds(control_plane):
    return install_crds(control_plane.api_client)


def stamp(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def report(custom, node, pressure, *, heartbeat=None, since=None):
    """What the node's agent writes: MemoryPressure and its lastUpdateTime heartbeat."""
    now = datetime.now(UTC)
    status = {
        "lastUpdateTime": stamp(heartbeat or now),
        "conditions": [
            {
                "type": "MemoryPressure",
                "status": "True" if pressure else "False",
                "reason": "Evicting" if pressure else "NoRecentEvictions",
                "message": "",
                "lastTransitionTime": stamp(since or now),
            }
        ],
    }
    custom.patch_cluster_custom_object_status(GROUP, VERSION, RESERVES, node, {"status": status})


def taints(core, node):
    return [(t.key, t.effect, t.value) for t in core.read_node(node).spec.taints or []]


def ours(core, node):
    return (KEY, "NoSchedule", None) in taints(core, node)


def test_taint_follows_the_agents_memory_pressure(control_plane, crds, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(control_plane.kubeconfig))
    monkeypatch.setenv("OOMGUARD_OPERATOR_RESYNC_SECONDS", "300")  # rechecks must not wait
    monkeypatch.setenv("OOMGUARD_OPERATOR_DEBOUNCE_SECONDS", "0.1")
    monkeypatch.setenv("OOMGUARD_OPERATOR_PRESSURE_TAINT_HEARTBEAT_SECONDS", "6")
    core = CoreV1Api(control_plane.api_client)
    custom = CustomObjectsApi(control_plane.api_client)
    run = uuid.uuid4().hex[:6]
    mine = {"oomguard-taint-test": run}
    storm = create_node(core, f"storm-{run}", labels=mine).metadata.name
    stale = create_node(core, f"stale-{run}", labels=mine).metadata.name
    orphan = create_node(core, f"orphan-{run}").metadata.name  # no policy, no reserve
    user_taint = V1Taint(key="dedicated", value="db", effect="NoSchedule")
    core.patch_node(storm, {"spec": {"taints": [user_taint.to_dict()]}})
    # left behind by an operator that died without cleaning up
    for node in (stale, orphan):
        core.patch_node(node, {"spec": {"taints": [{"key": KEY, "effect": "NoSchedule"}]}})
    custom.create_cluster_custom_object(
        GROUP,
        VERSION,
        POLICIES,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MemoryReservePolicy",
            "metadata": {"name": f"taint-{run}"},
            "spec": {"nodeSelector": {"matchLabels": mine}, "reserve": {"absolute": "1Gi"}},
        },
    )
    try:
        with KopfRunner(ARGS, timeout=120) as runner:
            # the first reconcile removes taints no report justifies
            wait_for(
                "stale taints removed", lambda: not ours(core, stale) and not ours(core, orphan)
            )
            wait_for(
                "reserves created",
                lambda: all(_reserve(custom, n) is not None for n in (storm, stale)),
            )
            assert not ours(core, storm)

            report(custom, storm, True)
            wait_for("taint on the storm node", lambda: ours(core, storm), timeout=20)
            # the user's taint stays, ours has a timeAdded
            assert ("dedicated", "NoSchedule", "db") in taints(core, storm)
            added = next(t for t in core.read_node(storm).spec.taints if t.key == KEY).time_added
            assert added is not None

            report(custom, storm, False)
            wait_for("taint gone with the pressure", lambda: not ours(core, storm), timeout=20)
            assert taints(core, storm) == [("dedicated", "NoSchedule", "db")]

            # an agent that goes silent (no status refresh for the heartbeat, 6 s): its
            # taint goes, long before the 300 s resync
            report(custom, storm, True)
            wait_for("taint back", lambda: ours(core, storm), timeout=20)
            wait_for("silent agent's taint removed", lambda: not ours(core, storm), timeout=20)

            # an episode older than the maximum age (600 s) taints nothing
            old = datetime.now(UTC) - timedelta(seconds=700)
            report(custom, stale, True, since=old)

            # still under pressure when the operator stops: it takes its taint away
            report(custom, storm, True, heartbeat=datetime.now(UTC) + timedelta(seconds=120))
            wait_for("taint for the shutdown", lambda: ours(core, storm), timeout=20)
            assert not ours(core, stale)
            taints_api = pressure_taint_handlers.running.taints
            assert taints_api is not None
        assert runner.exit_code == 0, runner.output
        assert not ours(core, storm), "the stopping operator left its taint"
        assert taints(core, storm) == [("dedicated", "NoSchedule", "db")]
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, POLICIES, f"taint-{run}")
        for node in (storm, stale, orphan):
            core.delete_node(node)


def test_turned_off_the_operator_leaves_nodes_alone(control_plane, crds, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(control_plane.kubeconfig))
    monkeypatch.setenv("OOMGUARD_OPERATOR_PRESSURE_TAINT", "false")
    core = CoreV1Api(control_plane.api_client)
    custom = CustomObjectsApi(control_plane.api_client)
    run = uuid.uuid4().hex[:6]
    mine = {"oomguard-taint-off": run}
    node = create_node(core, f"off-{run}", labels=mine).metadata.name
    name = f"off-{run}"
    custom.create_cluster_custom_object(
        GROUP,
        VERSION,
        POLICIES,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MemoryReservePolicy",
            "metadata": {"name": name},
            "spec": {"nodeSelector": {"matchLabels": mine}, "reserve": {"absolute": "1Gi"}},
        },
    )
    try:
        with KopfRunner(ARGS, timeout=120) as runner:
            wait_for("reserve created", lambda: _reserve(custom, node) is not None)
            report(custom, node, True)
            # the reserve's status arrives (the operator's reconcile is on its way too) ...
            wait_for(
                "the report seen by the operator's reserve index",
                lambda: (_reserve(custom, node) or {}).get("status"),
            )
            assert pressure_taint_handlers.running.taints is None  # ... no taint loop at all
        assert runner.exit_code == 0, runner.output
        assert not ours(core, node)
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, POLICIES, name)
        core.delete_node(node)


def _reserve(custom, node):
    from kubernetes.client.exceptions import ApiException

    try:
        return custom.get_cluster_custom_object(GROUP, VERSION, RESERVES, node)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
