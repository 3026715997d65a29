"""What `helm template` renders: the properties the issue asks of each object.

These read the chart's real output (helm built from Go modules) for every values file in
tests/helm/values; the API server's verdict on the same objects is in test_chart_apiserver.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from chart_tools import (
    CHART_DIR,
    KUBE_VERSION,
    VALUES_DIR,
    by_kind,
    container,
    one,
    pod_spec,
    render,
    run_helm,
)

pytestmark = pytest.mark.helm

Objects = list[dict[str, Any]]


def test_every_values_file_renders_the_core_objects(rendered: dict[str, Objects]) -> None:
    assert set(rendered) >= {"defaults", "dry-run", "monitoring", "custom-reserves"}
    for name, objects in rendered.items():
        kinds = {o["kind"] for o in objects}
        assert {
            "CustomResourceDefinition",
            "DaemonSet",
            "Deployment",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
        } <= kinds, name
        crds = {o["metadata"]["name"] for o in by_kind(objects, "CustomResourceDefinition")}
        assert crds == {"memoryreservepolicies.oomguard.io", "nodememoryreserves.oomguard.io"}


def test_pod_templates_carry_no_chart_label(rendered: dict[str, Objects]) -> None:
    """A chart-only version bump must not change the pod templates (no restart everywhere)."""
    for objects in rendered.values():
        for workload in [*by_kind(objects, "DaemonSet"), *by_kind(objects, "Deployment")]:
            labels = workload["spec"]["template"]["metadata"]["labels"]
            assert "helm.sh/chart" not in labels
            # ...while the objects themselves do carry it.
            assert "helm.sh/chart" in workload["metadata"]["labels"]


def test_chart_version_bump_leaves_pod_templates_identical(helm_home: Path, tmp_path: Path) -> None:
    bumped = tmp_path / "oomguard"
    _copy_chart(bumped)
    chart_yaml = bumped / "Chart.yaml"
    chart_yaml.write_text(chart_yaml.read_text().replace("version: 0.1.0", "version: 0.1.1", 1))

    def templates(chart: Path) -> dict[str, Any]:
        result = run_helm(
            ["template", "r", str(chart), "-n", "ns", "--kube-version", KUBE_VERSION],
            home=helm_home,
        )
        assert result.returncode == 0, result.output
        from chart_tools import parse_manifests

        objs = parse_manifests(result.stdout)
        return {
            o["kind"]: o["spec"]["template"]
            for o in objs
            if o["kind"] in {"DaemonSet", "Deployment"}
        }

    before, after = templates(CHART_DIR), templates(bumped)
    assert before == after
    assert set(before) == {"DaemonSet", "Deployment"}


def _copy_chart(dest: Path) -> None:
    import shutil

    shutil.copytree(CHART_DIR, dest)


def test_agent_daemonset_defaults(rendered: dict[str, Objects]) -> None:
    ds = one(rendered["defaults"], "DaemonSet")
    spec = pod_spec(ds)
    agent = container(ds)

    env = {e["name"]: e for e in agent["env"]}
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}

    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["host-cgroup"]["hostPath"] == {"path": "/sys/fs/cgroup", "type": "Directory"}
    mounts = {m["name"]: m for m in agent["volumeMounts"]}
    # Apart from the runtime's own (namespaced) /sys/fs/cgroup, and named to the agent.
    assert mounts["host-cgroup"]["mountPath"] == "/host/sys/fs/cgroup"
    assert "--cgroup-root=/host/sys/fs/cgroup" in agent["args"]
    # read-only; only kubepods is writable (test_chart_protection.py)
    assert mounts["host-cgroup"]["readOnly"] is True

    assert spec["tolerations"] == [{"operator": "Exists"}]
    assert spec["priorityClassName"] == "system-node-critical"
    assert spec["hostPID"] is False
    assert spec.get("hostNetwork", False) is False

    assert agent["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert agent["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert agent["resources"]["requests"]["memory"]
    assert agent["resources"]["limits"]["memory"]


def test_agent_is_not_throttled_and_keeps_its_state_on_the_host(
    rendered: dict[str, Objects],
) -> None:
    """Item 8 and 2 of "do no harm": memory requests equal limits, no CPU limit (a throttled
    guard is a late guard; its OOM standing comes from its own oom_score_adj),
    system-node-critical; the memory.high record and the one-agent lock on a hostPath, so a
    successor finds them after a crash."""
    ds = one(rendered["defaults"], "DaemonSet")
    spec, agent = pod_spec(ds), container(ds)
    resources = agent["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert resources["requests"]["memory"] == resources["limits"]["memory"]
    assert "cpu" not in resources["limits"]
    assert spec["priorityClassName"] == "system-node-critical"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["state"]["hostPath"] == {
        "path": "/var/lib/oomguard",
        "type": "DirectoryOrCreate",
    }
    mounts = {m["name"]: m for m in agent["volumeMounts"]}
    assert f"--state-dir={mounts['state']['mountPath']}" in agent["args"]
    assert "--serve-status-to-cluster" not in agent["args"]  # /status only inside the pod

    strategy = ds["spec"]["updateStrategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == "10%"

    sc = agent["securityContext"]
    assert sc["privileged"] is False
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert "SYS_ADMIN" not in sc["capabilities"].get("add", [])
    assert sc["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


@pytest.mark.parametrize("kind", ["DaemonSet", "Deployment"])
def test_rendered_args_are_accepted_by_the_real_commands(
    kind: str, rendered: dict[str, Objects]
) -> None:
    """Every flag the chart passes exists in `oomguard monitor` / `oomguard operator`."""
    from oomguard.cli import build_parser

    parser = build_parser()
    for name, objects in rendered.items():
        args = container(one(objects, kind))["args"]
        try:
            parsed = parser.parse_args(args)
        except SystemExit as exc:  # argparse's way of refusing
            raise AssertionError(f"{name}: {kind} args rejected: {args}") from exc
        assert parsed.command == ("monitor" if kind == "DaemonSet" else "operator")


@pytest.mark.parametrize(("kind", "side"), [("DaemonSet", "agent"), ("Deployment", "operator")])
def test_log_values_reach_the_commands(kind: str, side: str, helm_home: Path) -> None:
    from oomguard.cli import build_parser

    values = [f"{side}.logFormat=json", f"{side}.logLevel=warning"]
    objects = render(helm_home, [], set_values=values)
    parsed = build_parser().parse_args(container(one(objects, kind))["args"])
    assert (parsed.log_format, parsed.log_level) == ("json", "warning")
    if side == "operator":
        verbose = render(helm_home, [], set_values=["operator.verbose=true"])
        parsed = build_parser().parse_args(container(one(verbose, kind))["args"])
        assert parsed.log_level == "debug"


def test_ports_match_probes_services_and_flags(rendered: dict[str, Objects]) -> None:
    objects = rendered["defaults"]
    agent = container(one(objects, "DaemonSet"))
    assert f"--http-port={agent['ports'][0]['containerPort']}" in agent["args"]
    op = container(one(objects, "Deployment"))
    ports = {p["name"]: p["containerPort"] for p in op["ports"]}
    assert f"--metrics-port={ports['http']}" in op["args"]
    assert f"--liveness=http://0.0.0.0:{ports['health']}/healthz" in op["args"]
    assert op["livenessProbe"]["httpGet"]["port"] == "health"
    assert one(objects, "Service", "operator")["spec"]["ports"][0]["targetPort"] == "http"


@pytest.mark.parametrize(
    ("values", "mode"),
    [
        ((), "auto"),
        (("agent.systemdDBus=on",), "on"),
        (("agent.systemdDBus=off",), None),
        (("agent.cgroupDriver=cgroupfs",), None),
        (("agent.cgroupDriver=systemd", "agent.hostDBusDir=/var/run/dbus"), "auto"),
    ],
)
def test_the_system_bus_is_mounted_only_where_systemd_may_be_asked(
    helm_home: Path, values: tuple[str, ...], mode: str | None
) -> None:
    ds = one(render(helm_home, set_values=values), "DaemonSet")
    agent = container(ds)
    volumes = {v["name"]: v for v in pod_spec(ds)["volumes"]}
    mounts = {m["name"]: m for m in agent["volumeMounts"]}
    if mode is None:
        assert "--systemd-dbus=off" in agent["args"]
        assert "host-dbus" not in volumes
        assert "host-dbus" not in mounts
        return
    assert f"--systemd-dbus={mode}" in agent["args"]
    assert "--systemd-socket=/host/run/dbus/system_bus_socket" in agent["args"]
    path = "/var/run/dbus" if "agent.hostDBusDir=/var/run/dbus" in values else "/run/dbus"
    assert volumes["host-dbus"]["hostPath"] == {"path": path, "type": "DirectoryOrCreate"}
    assert mounts["host-dbus"]["mountPath"] == "/host/run/dbus"
    assert not mounts["host-dbus"].get("readOnly", False)  # connecting to a socket writes


def test_agent_privileged_variant(rendered: dict[str, Objects]) -> None:
    agent = container(one(rendered["privileged"], "DaemonSet"))
    assert agent["securityContext"]["privileged"] is True
    assert "capabilities" not in agent["securityContext"]


def test_operator_runs_unprivileged(rendered: dict[str, Objects]) -> None:
    deploy = one(rendered["defaults"], "Deployment")
    spec = pod_spec(deploy)
    op = container(deploy)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert op["securityContext"]["allowPrivilegeEscalation"] is False
    assert op["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert op["securityContext"]["readOnlyRootFilesystem"] is True
    assert not [v for v in spec.get("volumes", []) if "hostPath" in v]
    assert not spec.get("hostPID") and not spec.get("hostNetwork")


def test_dry_run_reaches_agent_and_policy(rendered: dict[str, Objects]) -> None:
    for name, dry in (("defaults", False), ("dry-run", True)):
        agent = container(one(rendered[name], "DaemonSet"))
        assert ("--dry-run" in agent["args"]) is dry
        policy = one(rendered[name], "MemoryReservePolicy")
        assert policy["spec"]["dryRun"] is dry


def test_default_policy_carries_reserve_defaults(rendered: dict[str, Objects]) -> None:
    policy = one(rendered["defaults"], "MemoryReservePolicy")
    assert policy["metadata"]["name"] == "default"
    assert policy["spec"]["reserve"] == {"percent": 10, "min": "512Mi", "max": "10Gi"}
    assert policy["spec"]["priority"] == 0
    assert "nodeSelector" not in policy["spec"]  # selects every node

    custom = one(rendered["custom-reserves"], "MemoryReservePolicy")
    assert custom["spec"]["reserve"] == {"absolute": "4Gi"}
    assert custom["spec"]["eviction"]["policy"] == "QoSThenNewest"
    assert custom["spec"]["nodeSelector"]["matchLabels"] == {"node-role.example.com/gpu": "true"}

    assert not by_kind(rendered["privileged"], "MemoryReservePolicy")


def test_image_digest_wins_over_tag(rendered: dict[str, Objects]) -> None:
    for kind in ("DaemonSet", "Deployment"):
        image = container(one(rendered["custom-reserves"], kind))["image"]
        assert image == (
            "registry.example.com/platform/oomguard@sha256:"
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        )
        assert container(one(rendered["defaults"], kind))["image"].endswith(":0.1.0")


def test_monitoring_objects_follow_their_toggles(rendered: dict[str, Objects]) -> None:
    optional = ("ServiceMonitor", "PodMonitor", "PrometheusRule", "ConfigMap")
    for kind in optional:
        assert not by_kind(rendered["defaults"], kind), kind
    mon = rendered["monitoring"]
    assert len(by_kind(mon, "ServiceMonitor")) == 2
    assert len(by_kind(rendered["pod-monitoring"], "PodMonitor")) == 2
    rule = one(mon, "PrometheusRule")
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert alerts >= {
        "OOMGuardKernelOOMKill",
        "OOMGuardEvictionRateHigh",
        "OOMGuardAgentDown",
        "OOMGuardAgentDegraded",
    }
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    dashboard = one(mon, "ConfigMap", "dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    parsed = json.loads(dashboard["data"]["oomguard.json"])
    assert parsed["uid"] == "oomguard" and parsed["panels"]


def test_agent_service_is_headless_and_matches_the_pods(rendered: dict[str, Objects]) -> None:
    objects = rendered["defaults"]
    svc = one(objects, "Service", "agent")
    assert svc["spec"]["clusterIP"] == "None"
    pod_labels = one(objects, "DaemonSet")["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    op_svc = one(objects, "Service", "operator")
    op_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert op_svc["spec"]["selector"].items() <= op_labels.items()


def test_objects_land_in_the_release_namespace(helm_home: Path) -> None:
    objects = render(helm_home, [VALUES_DIR / "monitoring.yaml"], namespace="guard-ns")
    cluster_scoped = {
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "ValidatingWebhookConfiguration",
    }
    for o in objects:
        if o["kind"] in cluster_scoped or o["kind"] == "MemoryReservePolicy":
            assert "namespace" not in o["metadata"], o["kind"]
        else:
            assert o["metadata"]["namespace"] == "guard-ns", o["kind"]
    for binding in by_kind(objects, "ClusterRoleBinding"):
        assert binding["subjects"][0]["namespace"] == "guard-ns"


def test_memory_pressure_taint_toggle_reaches_operator_args_and_rbac(helm_home: Path) -> None:
    key = "oomguard.io/memory-pressure"

    def node_verbs(objects: Objects) -> set[str]:
        roles = [
            r
            for r in by_kind(objects, "ClusterRole")
            if r["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"
        ]
        return {
            verb
            for role in roles
            for rule in role["rules"]
            if "nodes" in rule["resources"] and rule["apiGroups"] == [""]
            for verb in rule["verbs"]
        }

    on = render(helm_home)
    deploy = one(on, "Deployment")
    args = container(deploy)["args"]
    assert "--pressure-taint-max-age-seconds=600" in args
    assert "--pressure-taint-heartbeat-seconds=180" in args
    assert "patch" in node_verbs(on)
    # the operator removes the taint: it must always be schedulable onto a tainted node
    tolerations = pod_spec(deploy)["tolerations"]
    assert {"key": key, "operator": "Exists", "effect": "NoSchedule"} in tolerations
    off = render(helm_home, set_values=["operator.memoryPressureTaint.enabled=false"])
    assert "--no-pressure-taint" in container(one(off, "Deployment"))["args"]
    assert node_verbs(off) == {"list", "watch"}
    # the agent DaemonSet tolerates every taint, ours included
    agent = pod_spec(one(on, "DaemonSet"))
    assert {"operator": "Exists"} in agent["tolerations"]


def test_an_agent_slowed_by_its_own_memory_high_is_not_killed_by_its_liveness_probe(
    rendered: dict[str, Objects],
) -> None:
    """The agent answers /healthz from inside the kubepods it throttles: on the real node the
    kubelet killed it mid-storm when three 2 s probes went unanswered, and kubepods went
    unguarded until it was back. A minute of slow answers, each given 10 s, is tolerated."""
    probe = container(one(rendered["defaults"], "DaemonSet"))["livenessProbe"]
    assert probe["timeoutSeconds"] >= 10
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 60


def test_a_slow_start_is_not_a_crash_loop(rendered: dict[str, Objects]) -> None:
    """The liveness probes count only after a start-up probe passed, with minutes of room:
    on an emulated or starved node, Python alone took longer to start than the liveness
    probe's first failures allowed, and the kubelet killed the agent mid-start (exit 137)."""
    for kind in ("DaemonSet", "Deployment"):
        c = container(one(rendered["defaults"], kind))
        startup = c["startupProbe"]
        assert startup["httpGet"]["path"] == c["livenessProbe"]["httpGet"]["path"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 300, kind
        assert "initialDelaySeconds" not in c["livenessProbe"], kind
