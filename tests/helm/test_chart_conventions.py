"""The conventions platform teams expect from a chart (set against prometheus-community's
node-exporter chart in the chart README): each value is rendered where it belongs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from chart_tools import VALUES_DIR, by_kind, container, one, pod_spec, render, walk

pytestmark = pytest.mark.helm

Objects = list[dict[str, Any]]
CLUSTER_SCOPED = {
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingWebhookConfiguration",
    "MemoryReservePolicy",
}


def test_namespace_override_moves_every_namespaced_object_and_reference(helm_home: Path) -> None:
    objects = render(
        helm_home,
        [VALUES_DIR / "monitoring.yaml"],
        ["namespaceOverride=guard", "evictionWebhook.tls.mode=certManager"],
        namespace="release-ns",
    )
    for obj in objects:
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"]["namespace"] == "guard", (obj["kind"], obj["metadata"]["name"])
    for path, leaf in walk(objects):
        if isinstance(leaf, str):
            assert "release-ns" not in leaf, path
    hook = one(objects, "ValidatingWebhookConfiguration")
    assert hook["webhooks"][0]["clientConfig"]["service"]["namespace"] == "guard"
    assert "system:serviceaccount:guard:" in hook["webhooks"][0]["matchConditions"][0]["expression"]
    for binding in by_kind(objects, "ClusterRoleBinding"):
        assert {s["namespace"] for s in binding["subjects"]} == {"guard"}
    assert any(
        a.startswith("--webhook-agent=guard:")
        for a in container(one(objects, "Deployment"))["args"]
    )


def test_rbac_create_false_leaves_out_every_role_and_binding(helm_home: Path) -> None:
    objects = render(helm_home, set_values=["rbac.create=false"])
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    assert len(by_kind(objects, "ServiceAccount")) == 2
    assert {"ClusterRole", "ClusterRoleBinding"} <= {o["kind"] for o in render(helm_home)}


@pytest.mark.parametrize(
    ("repository", "registry", "image"),
    [
        ("ghcr.io/oomguard/oomguard", "mirror.example.com", "mirror.example.com/oomguard/oomguard"),
        (
            "ghcr.io/oomguard/oomguard",
            "mirror.example.com/ghcr/",
            "mirror.example.com/ghcr/oomguard/oomguard",
        ),
        ("localhost:5000/oomguard", "m.example.com:8443", "m.example.com:8443/oomguard"),
        ("oomguard/oomguard", "mirror.example.com", "mirror.example.com/oomguard/oomguard"),
        ("ghcr.io/oomguard/oomguard", "", "ghcr.io/oomguard/oomguard"),
    ],
)
def test_global_image_registry_replaces_the_images_registry(
    helm_home: Path, repository: str, registry: str, image: str
) -> None:
    objects = render(
        helm_home,
        set_values=[
            f"image.repository={repository}",
            f"global.imageRegistry={registry}",
            "image.tag=1.2.3",
        ],
    )
    for kind in ("DaemonSet", "Deployment"):
        assert container(one(objects, kind))["image"] == f"{image}:1.2.3"
    hook = one(objects, "Pod", "test-agent-readyz")
    assert hook["spec"]["containers"][0]["image"] == f"{image}:1.2.3"


def test_pull_secrets_global_first_then_the_charts_without_repeats(
    rendered: dict[str, Objects], helm_home: Path
) -> None:
    objects = rendered["pod-monitoring"]
    for kind in ("DaemonSet", "Deployment"):
        assert pod_spec(one(objects, kind))["imagePullSecrets"] == [
            {"name": "mirror-pull"},
            {"name": "ghcr-pull"},
        ]
    again = render(
        helm_home, set_values=["global.imagePullSecrets[0]=a", "imagePullSecrets[0].name=a"]
    )
    assert pod_spec(one(again, "DaemonSet"))["imagePullSecrets"] == [{"name": "a"}]
    assert "imagePullSecrets" not in pod_spec(one(rendered["defaults"], "DaemonSet"))


def test_extra_volumes_and_mounts(rendered: dict[str, Objects]) -> None:
    objects = rendered["pod-monitoring"]
    for kind, name, path in [
        ("DaemonSet", "agent-extra", "/etc/oomguard-extra"),
        ("Deployment", "operator-extra", "/var/run/oomguard-extra"),
    ]:
        workload = one(objects, kind)
        assert name in [v["name"] for v in pod_spec(workload)["volumes"]]
        mounts = {m["name"]: m["mountPath"] for m in container(workload)["volumeMounts"]}
        assert mounts[name] == path
        # the chart's own volumes stay
        assert "tmp" in mounts


def test_security_contexts_take_the_users_keys_and_keep_the_rest(
    rendered: dict[str, Objects], helm_home: Path
) -> None:
    agent = container(one(rendered["pod-monitoring"], "DaemonSet"))["securityContext"]
    assert agent["seLinuxOptions"] == {"type": "spc_t"}
    assert agent["appArmorProfile"] == {"type": "RuntimeDefault"}
    assert agent["privileged"] is False
    assert agent["capabilities"] == {"drop": ["ALL"], "add": ["SYS_RESOURCE"]}
    operator_pod = pod_spec(one(rendered["pod-monitoring"], "Deployment"))["securityContext"]
    assert operator_pod["fsGroupChangePolicy"] == "OnRootMismatch"
    assert operator_pod["runAsNonRoot"] is True
    # false and 0 replace the chart's values too
    objects = render(
        helm_home,
        set_values=[
            "operator.securityContext.readOnlyRootFilesystem=false",
            "agent.podSecurityContext.runAsGroup=0",
            "operator.podSecurityContext.runAsUser=1000",
        ],
    )
    assert (
        container(one(objects, "Deployment"))["securityContext"]["readOnlyRootFilesystem"] is False
    )
    assert pod_spec(one(objects, "Deployment"))["securityContext"]["runAsUser"] == 1000
    assert pod_spec(one(objects, "DaemonSet"))["securityContext"]["runAsGroup"] == 0
    default = container(one(rendered["defaults"], "DaemonSet"))["securityContext"]
    assert default == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"add": ["SYS_RESOURCE"], "drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": False,
        "runAsUser": 0,
    }


def test_scrape_annotations_name_each_services_own_port(rendered: dict[str, Objects]) -> None:
    objects = rendered["pod-monitoring"]
    ports = {"agent": 9610, "operator": 9611}
    for component, port in ports.items():
        service = one(objects, "Service", f"{component}-metrics")
        assert service["metadata"]["annotations"] == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(port),
            "prometheus.io/path": "/metrics",
        }
        assert service["spec"]["ports"][0]["port"] == port
    monitoring = one(rendered["monitoring"], "Service", "agent-metrics")
    assert monitoring["metadata"]["annotations"] == {"example.com/team": "platform"}
    assert "annotations" not in one(rendered["defaults"], "Service", "agent-metrics")["metadata"]


@pytest.mark.parametrize(
    ("kind", "key", "endpoints"),
    [
        ("ServiceMonitor", "serviceMonitor", "endpoints"),
        ("PodMonitor", "podMonitor", "podMetricsEndpoints"),
    ],
)
def test_monitors_take_a_namespace_and_relabelings(
    helm_home: Path, kind: str, key: str, endpoints: str
) -> None:
    objects = render(
        helm_home,
        set_values=[
            f"monitoring.{key}.enabled=true",
            f"monitoring.{key}.namespace=monitoring",
            f"monitoring.{key}.relabelings[0].targetLabel=cluster",
            f"monitoring.{key}.relabelings[0].replacement=prod",
            f"monitoring.{key}.metricRelabelings[0].action=drop",
            f"monitoring.{key}.metricRelabelings[0].sourceLabels[0]=__name__",
            f"monitoring.{key}.metricRelabelings[0].regex=process_.*",
        ],
        namespace="guard",
    )
    monitors = by_kind(objects, kind)
    assert len(monitors) == 2
    for monitor in monitors:
        assert monitor["metadata"]["namespace"] == "monitoring"
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["guard"]}
        endpoint = monitor["spec"][endpoints][0]
        user = {"targetLabel": "cluster", "replacement": "prod"}
        node = {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}
        expected = [node, user] if monitor["metadata"]["name"].endswith("agent") else [user]
        assert endpoint["relabelings"] == expected
        assert endpoint["metricRelabelings"] == [
            {"action": "drop", "sourceLabels": ["__name__"], "regex": "process_.*"}
        ]


def test_service_and_pod_monitors_together_are_refused(helm_home: Path) -> None:
    from chart_tools import run_helm, template_args

    result = run_helm(
        template_args(
            set_values=[
                "monitoring.serviceMonitor.enabled=true",
                "monitoring.podMonitor.enabled=true",
            ]
        ),
        home=helm_home,
    )
    assert result.returncode != 0
    assert "choose one" in result.output and "double every sum" in result.output


def test_chart_metadata_has_icon_maintainers_and_sources() -> None:
    import yaml
    from chart_tools import CHART_DIR, REPO

    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["maintainers"] and all(m["name"] for m in chart["maintainers"])
    assert chart["sources"][0] == chart["home"]
    prefix = "https://raw.githubusercontent.com/oomguard/oomguard/main/"
    assert chart["icon"].startswith(prefix)
    assert (REPO / chart["icon"].removeprefix(prefix)).is_file()


def _hook_script(objects: Objects) -> tuple[dict[str, Any], list[str]]:
    pod = one(objects, "Pod", "test-agent-readyz")
    return pod, pod["spec"]["containers"][0]["args"]


def test_helm_test_hook_asks_every_agent_for_readyz(
    rendered: dict[str, Objects], helm_home: Path
) -> None:
    """The hook's script, run here against agents' real HTTP endpoints, ready and not."""
    import subprocess
    import sys

    from oomguard.monitor.feedback.http_endpoints import HttpEndpoints

    pod, args = _hook_script(rendered["defaults"])
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert args[1:] == ["oomguard-agent-metrics.oomguard-system.svc", "9610"]
    assert pod["spec"]["containers"][0]["command"] == ["python", "-c"]
    for ready, status in [(True, 0), (False, 1)]:
        agent = HttpEndpoints("127.0.0.1", 0)
        agent.add_check("/readyz", lambda ready=ready: (ready, "" if ready else "pods not listed"))
        agent.start()
        try:
            result = subprocess.run(
                [sys.executable, "-c", args[0], "127.0.0.1", str(agent.port)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        finally:
            agent.stop()
        assert result.returncode == status, result.stdout + result.stderr
        assert ("/readyz 200 ok" in result.stdout) is ready
    # the hook needs the agent's headless Service: without it there is no hook
    assert not by_kind(render(helm_home, set_values=["monitoring.services=false"]), "Pod")
