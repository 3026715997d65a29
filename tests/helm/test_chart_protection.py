"""Item 8 (who may scrape) and item 11 (narrower privileges, the operator's protection) of
issue 12, "do no harm", as the chart renders them.

- The agent gets the host's cgroup tree read-only and only the pods' cgroup writable, at the
  same path; the writable hostPath is never created (type Directory), since a directory made
  in cgroupfs is a new cgroup. The kernel's side of it: tests/monitor/kernel/
  test_narrow_mount_kernel.py.
- The NetworkPolicies admit the metrics ports only from `networkPolicy.metricsFrom`; the
  eviction webhook's port stays open to the apiserver, from wherever it calls.
- Several operator replicas get a PodDisruptionBudget and are spread over nodes; the
  documented production values (docs/production-values.yaml) render all of it.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from chart_tools import by_kind, container, one, pod_spec, render, run_helm, template_args

from oomguard.monitor.kube.pod_cgroups import DEFAULT_KUBEPODS, CgroupDriver

pytestmark = pytest.mark.helm

Objects = list[dict[str, Any]]
HOST_CGROUP = "/host/sys/fs/cgroup"


def _agent_kubepods(args: list[str]) -> str:
    """The kubepods cgroup the agent will use, from its flags (as node_command decides)."""
    flags = dict(a.removeprefix("--").split("=", 1) for a in args if "=" in a)
    if "kubepods-cgroup" in flags:
        return flags["kubepods-cgroup"].strip("/")
    return str(DEFAULT_KUBEPODS[CgroupDriver(flags["cgroup-driver"])])


@pytest.mark.parametrize(
    ("values", "kubepods"),
    [
        ((), "kubepods.slice"),
        (("agent.cgroupDriver=cgroupfs",), "kubepods"),
        (
            ("agent.kubepodsCgroup=kubelet.slice/kubelet-kubepods.slice",),
            "kubelet.slice/kubelet-kubepods.slice",
        ),
        (("agent.cgroupDriver=cgroupfs", "agent.hostCgroupRoot=/sys/fs/cgroup/"), "kubepods"),
    ],
)
def test_the_host_cgroup_tree_is_read_only_and_only_kubepods_writable(
    helm_home: Path, values: tuple[str, ...], kubepods: str
) -> None:
    ds = one(render(helm_home, set_values=values), "DaemonSet")
    agent = container(ds)
    volumes = {v["name"]: v for v in pod_spec(ds)["volumes"]}
    cgroup_mounts = [
        m
        for m in agent["volumeMounts"]
        if PurePosixPath(m["mountPath"]).is_relative_to(HOST_CGROUP)
    ]
    assert {m["mountPath"]: m.get("readOnly", False) for m in cgroup_mounts} == {
        HOST_CGROUP: True,
        f"{HOST_CGROUP}/{kubepods}": False,
    }
    writable = next(m for m in cgroup_mounts if not m.get("readOnly", False))
    assert volumes[writable["name"]]["hostPath"] == {
        "path": f"/sys/fs/cgroup/{kubepods}",
        "type": "Directory",  # a wrong driver fails the pod; never a stray cgroup made
    }
    assert all(m["mountPropagation"] == "None" for m in cgroup_mounts)
    # the agent guards exactly the cgroup that is writable
    assert f"--cgroup-root={HOST_CGROUP}" in agent["args"]
    assert _agent_kubepods(agent["args"]) == kubepods


def test_without_a_driver_the_chart_refuses_instead_of_guessing(helm_home: Path) -> None:
    result = run_helm(
        template_args((), ("agent.cgroupDriver=",), namespace="oomguard-system"), home=helm_home
    )
    assert result.returncode != 0
    assert "set agent.cgroupDriver (systemd or cgroupfs) or agent.kubepodsCgroup" in result.output
    # the opt-out: the whole tree read-write, the driver detected by the agent
    ds = one(
        render(helm_home, set_values=("agent.cgroupDriver=", "agent.hostCgroupReadOnly=false")),
        "DaemonSet",
    )
    mounts = {m["name"]: m for m in container(ds)["volumeMounts"]}
    assert not mounts["host-cgroup"].get("readOnly", False)
    assert "host-kubepods" not in mounts
    assert not [a for a in container(ds)["args"] if a.startswith("--cgroup-driver")]


def test_no_hostpath_in_cgroupfs_is_ever_created(rendered: dict[str, Objects]) -> None:
    for name, objects in rendered.items():
        for workload in by_kind(objects, "DaemonSet"):
            for volume in pod_spec(workload)["volumes"]:
                host_path = volume.get("hostPath")
                if host_path and host_path["path"].startswith("/sys/fs/cgroup"):
                    assert host_path["type"] == "Directory", (name, volume)


def _policies(objects: Objects) -> dict[str, dict[str, Any]]:
    return {
        o["metadata"]["name"].removeprefix("oomguard-"): o
        for o in by_kind(objects, "NetworkPolicy")
    }


def test_only_the_configured_scrapers_reach_the_metrics_ports(rendered: dict[str, Objects]) -> None:
    policies = _policies(rendered["defaults"])
    assert set(policies) == {"agent", "operator", "webhook"}
    monitoring = [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    for component, ports in (("agent", ["http"]), ("operator", ["http", "health"])):
        spec = policies[component]["spec"]
        assert spec["policyTypes"] == ["Ingress"]
        [rule] = spec["ingress"]
        assert [p["port"] for p in rule["ports"]] == ports
        assert rule["from"] == monitoring, component
    # the apiserver calls the webhook from an address no chart can know: any source, one port
    [rule] = policies["webhook"]["spec"]["ingress"]
    assert "from" not in rule
    assert rule["ports"] == [{"port": "webhook", "protocol": "TCP"}]


def test_scrapers_are_a_setting_and_an_empty_list_admits_anyone(
    helm_home: Path, tmp_path: Path
) -> None:
    prometheus = {
        "namespaceSelector": {"matchLabels": {"team": "observability"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }
    own = tmp_path / "scrapers.yaml"
    own.write_text(yaml.safe_dump({"networkPolicy": {"metricsFrom": [prometheus]}}))
    for component in ("agent", "operator"):
        [rule] = _policies(render(helm_home, [own]))[component]["spec"]["ingress"]
        assert rule["from"] == [prometheus]
    anyone = tmp_path / "anyone.yaml"
    anyone.write_text(yaml.safe_dump({"networkPolicy": {"metricsFrom": []}}))
    [rule] = _policies(render(helm_home, [anyone]))["agent"]["spec"]["ingress"]
    assert "from" not in rule


def _operator(objects: Objects) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return one(objects, "Deployment"), by_kind(objects, "PodDisruptionBudget")


def test_one_operator_replica_gets_no_budget_and_no_spreading(
    rendered: dict[str, Objects],
) -> None:
    deployment, budgets = _operator(rendered["defaults"])
    assert deployment["spec"]["replicas"] == 1
    assert budgets == []  # a budget on one replica would block every drain of its node
    assert "affinity" not in pod_spec(deployment)


def test_the_production_values_protect_the_operator(rendered: dict[str, Objects]) -> None:
    """docs/production-values.yaml: two peering replicas on two nodes, a budget that keeps one
    through drains, a critical priority class."""
    objects = rendered["production"]
    deployment, budgets = _operator(objects)
    spec = pod_spec(deployment)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["replicas"] == 2
    assert "--peering=oomguard" in container(deployment)["args"]
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert spec["priorityClassName"] == "system-cluster-critical"
    [term] = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    selector = term["podAffinityTerm"]["labelSelector"]["matchLabels"]
    assert selector.items() <= labels.items()
    [budget] = budgets
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert (
        budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    )
    assert budget["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    # the agent side of the same file: the narrow cgroup mounts
    agent = container(one(objects, "DaemonSet"))
    assert {m["name"]: m.get("readOnly", False) for m in agent["volumeMounts"]}["host-cgroup"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (("operator.podAntiAffinity=hard",), "requiredDuringSchedulingIgnoredDuringExecution"),
        (("operator.podAntiAffinity=",), None),
    ],
)
def test_spreading_replicas_is_a_setting(
    helm_home: Path, values: tuple[str, ...], expected: str | None
) -> None:
    two = ("operator.replicas=2", "operator.peering=oomguard", *values)
    spec = pod_spec(one(render(helm_home, set_values=two), "Deployment"))
    if expected is None:
        assert "affinity" not in spec
        return
    [term] = spec["affinity"]["podAntiAffinity"][expected]
    assert term["topologyKey"] == "kubernetes.io/hostname"


def test_an_affinity_of_your_own_wins_and_the_budget_can_be_left_out(
    helm_home: Path, tmp_path: Path
) -> None:
    zone = {
        "labelSelector": {"matchLabels": {"app": "other"}},
        "topologyKey": "topology.kubernetes.io/zone",
    }
    own_anti = {"requiredDuringSchedulingIgnoredDuringExecution": [zone]}
    values = tmp_path / "own.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "operator": {
                    "replicas": 3,
                    "peering": "oomguard",
                    "affinity": {"podAntiAffinity": own_anti},
                    "podDisruptionBudget": {"enabled": False},
                }
            }
        )
    )
    deployment, budgets = _operator(render(helm_home, [values]))
    assert pod_spec(deployment)["affinity"] == {"podAntiAffinity": own_anti}
    assert budgets == []
