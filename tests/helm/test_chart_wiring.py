"""How the chart's parts reach each other: NetworkPolicies as a whole, the agent's eviction
timeout against the webhook's, and the agent kept off nodes labelled cgroup v1.

NetworkPolicies are additive: a port is open to a source when any policy selecting the pod
admits it, and a pod no Ingress policy selects is open to all. These tests evaluate the rendered
policies that way, so a later change to one policy cannot silently cut off the webhook or a
scrape.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from chart_tools import by_kind, container, one, pod_spec, render

pytestmark = pytest.mark.helm

Objects = list[dict[str, Any]]
NAMESPACE = "oomguard-system"
# A Prometheus pod in its own namespace, as kube-prometheus-stack runs it.
MONITORING = (
    {"kubernetes.io/metadata.name": "monitoring"},
    {"app.kubernetes.io/name": "prometheus"},
)
# The apiserver calling the webhook: no pod labels, any namespace (its address varies).
APISERVER = ({"kubernetes.io/metadata.name": "kube-system"}, {"component": "kube-apiserver"})

NETWORK_CASES = {
    "defaults": [],
    "monitoring": [
        "monitoring.serviceMonitor.enabled=true",
        "monitoring.prometheusRule.enabled=true",
    ],
    "cert-manager": ["evictionWebhook.tls.mode=certManager"],
    "webhook-port": ["evictionWebhook.port=10443", "agent.port=9700", "operator.port=9800"],
    "no-webhook": ["evictionWebhook.enabled=false"],
}


def _selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """matchLabels/matchExpressions as the apiserver reads them; an empty selector selects all."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def _peer_admits(peer: dict[str, Any], source: tuple[dict[str, str], dict[str, str]]) -> bool:
    ns_labels, pod_labels = source
    if "ipBlock" in peer:
        return peer["ipBlock"].get("cidr") in {"0.0.0.0/0", "::/0"}
    if (
        "namespaceSelector" not in peer
        and ns_labels.get("kubernetes.io/metadata.name") != NAMESPACE
    ):
        return False  # a podSelector alone means the policy's own namespace
    return _selects(peer.get("namespaceSelector"), ns_labels) and _selects(
        peer.get("podSelector"), pod_labels
    )


def _workload_pods(objects: Objects) -> list[tuple[dict[str, str], dict[str, int]]]:
    """(pod labels, container port name -> number) of every workload the chart runs."""
    pods = []
    for workload in [*by_kind(objects, "DaemonSet"), *by_kind(objects, "Deployment")]:
        labels = workload["spec"]["template"]["metadata"]["labels"]
        ports = {
            p["name"]: p["containerPort"]
            for c in pod_spec(workload)["containers"]
            for p in c.get("ports", [])
        }
        pods.append((labels, ports))
    return pods


def _admitted(
    objects: Objects,
    pod_labels: dict[str, str],
    ports: dict[str, int],
    port: int,
    source: tuple[dict[str, str], dict[str, str]],
) -> bool:
    policies = [
        p
        for p in by_kind(objects, "NetworkPolicy")
        if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        and _selects(p["spec"]["podSelector"], pod_labels)
    ]
    if not policies:
        return True
    for policy in policies:
        for rule in policy["spec"].get("ingress") or []:
            rule_ports = rule.get("ports") or [{}]
            port_ok = any(
                "port" not in rp or rp["port"] == port or ports.get(str(rp["port"])) == port
                for rp in rule_ports
            )
            peers = rule.get("from") or [{"namespaceSelector": {}}]
            if port_ok and any(_peer_admits(peer, source) for peer in peers):
                return True
    return False


def _service_targets(objects: Objects, service: dict[str, Any], port: int | None = None):
    """(pod labels, ports, target port number) for each port of a Service (or one port)."""
    for labels, ports in _workload_pods(objects):
        if not _selects({"matchLabels": service["spec"]["selector"]}, labels):
            continue
        for sp in service["spec"]["ports"]:
            if port is not None and sp["port"] != port:
                continue
            target = sp.get("targetPort", sp["port"])
            number = ports[target] if isinstance(target, str) else target
            yield labels, ports, number


@pytest.fixture(scope="module", params=sorted(NETWORK_CASES))
def network_objects(request: pytest.FixtureRequest, helm_home: Path) -> Objects:
    return render(helm_home, set_values=NETWORK_CASES[request.param], namespace=NAMESPACE)


def test_every_service_port_is_admitted_from_the_monitoring_namespace(
    network_objects: Objects,
) -> None:
    services = by_kind(network_objects, "Service")
    checked = 0
    for service in services:
        if service["metadata"]["name"].endswith("-webhook"):
            continue
        for labels, ports, number in _service_targets(network_objects, service):
            assert _admitted(network_objects, labels, ports, number, MONITORING), (
                service["metadata"]["name"],
                number,
            )
            checked += 1
    assert checked >= 2  # the agent's and the operator's metrics


def test_agent_metrics_port_admits_the_monitoring_namespace(network_objects: Objects) -> None:
    agent = one(network_objects, "DaemonSet")
    labels = agent["spec"]["template"]["metadata"]["labels"]
    ports = {p["name"]: p["containerPort"] for p in container(agent)["ports"]}
    assert _admitted(network_objects, labels, ports, ports["http"], MONITORING)
    assert "NetworkPolicy" in {o["kind"] for o in network_objects}


def test_the_webhook_target_is_admitted_from_the_apiserver(network_objects: Objects) -> None:
    configs = by_kind(network_objects, "ValidatingWebhookConfiguration")
    if not configs:
        # only with the webhook off, and then no webhook Service is left either
        assert not [s for s in by_kind(network_objects, "Service") if "-webhook" in str(s)]
        return
    found = 0
    for hook in configs[0]["webhooks"]:
        ref = hook["clientConfig"]["service"]
        service = one(network_objects, "Service", ref["name"])
        assert service["metadata"]["name"] == ref["name"]
        assert service["metadata"]["namespace"] == ref["namespace"]
        for labels, ports, number in _service_targets(network_objects, service, ref["port"]):
            assert _admitted(network_objects, labels, ports, number, APISERVER), number
            found += 1
    assert found == 1


def test_a_policy_that_forgets_a_port_is_caught(helm_home: Path) -> None:
    """The evaluation above can fail: drop the webhook's policy and the webhook is cut off."""
    objects = render(helm_home, namespace=NAMESPACE)
    cut = [
        o
        for o in objects
        if not (o["kind"] == "NetworkPolicy" and "webhook" in o["metadata"]["name"])
    ]
    service = one(cut, "Service", "-webhook")
    [(labels, ports, number)] = list(_service_targets(cut, service, 443))
    assert not _admitted(cut, labels, ports, number, APISERVER)


def _flag(args: list[str], name: str) -> str | None:
    found = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    return found[-1] if found else None


@pytest.mark.parametrize("webhook_timeout", [1, 5, 30])
def test_agent_eviction_timeout_outlasts_the_webhook(helm_home: Path, webhook_timeout: int) -> None:
    """failurePolicy Ignore admits an eviction the webhook did not answer in time: the agent
    must still be waiting then, or it counts a done eviction as failed and acts again."""
    from oomguard.monitor.actions.pod_evictor import EVICTION_REQUEST_TIMEOUT

    objects = render(helm_home, set_values=[f"evictionWebhook.timeoutSeconds={webhook_timeout}"])
    hook = one(objects, "ValidatingWebhookConfiguration")["webhooks"][0]
    assert hook["timeoutSeconds"] == webhook_timeout
    flag = _flag(container(one(objects, "DaemonSet"))["args"], "eviction-timeout")
    agent_timeout = float(flag) if flag is not None else EVICTION_REQUEST_TIMEOUT
    assert agent_timeout >= hook["timeoutSeconds"] + 5


def _required_terms(objects: Objects) -> list[dict[str, Any]]:
    affinity = pod_spec(one(objects, "DaemonSet")).get("affinity") or {}
    required = affinity.get("nodeAffinity", {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    return (required or {}).get("nodeSelectorTerms", [])


def _schedulable(terms: list[dict[str, Any]], node_labels: dict[str, str]) -> bool:
    return not terms or any(
        _selects({"matchExpressions": t.get("matchExpressions", [])}, node_labels) for t in terms
    )


def test_agent_stays_off_nodes_labelled_cgroup_v1(helm_home: Path) -> None:
    terms = _required_terms(render(helm_home))
    assert not _schedulable(terms, {"oomguard.io/cgroup-v1": "true", "kubernetes.io/os": "linux"})
    assert _schedulable(terms, {"kubernetes.io/os": "linux"})
    # Turned off, nothing is added.
    assert _required_terms(render(helm_home, set_values=["agent.cgroupV1NodeLabel="])) == []


def test_cgroup_v1_label_joins_every_required_term_of_the_users_affinity(
    helm_home: Path, tmp_path: Path
) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        """
agent:
  cgroupV1NodeLabel: example.com/cgroup1
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
          - matchExpressions: [{key: pool, operator: In, values: [a]}]
          - matchExpressions: [{key: pool, operator: In, values: [b]}]
    podAntiAffinity: {}
"""
    )
    objects = render(helm_home, [values])
    terms = _required_terms(objects)
    assert len(terms) == 2
    assert _schedulable(terms, {"pool": "b"})
    assert not _schedulable(terms, {"pool": "b", "example.com/cgroup1": ""})
    assert not _schedulable(terms, {"pool": "c"})
    assert "podAntiAffinity" in pod_spec(one(objects, "DaemonSet"))["affinity"]


def test_agent_refusal_reaches_the_pod_status(helm_home: Path) -> None:
    """The start-up refusal on a cgroup v1 node is the container's termination message."""
    agent = container(one(render(helm_home), "DaemonSet"))
    assert agent["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert re.fullmatch(r"/host/sys/fs/cgroup", _flag(agent["args"], "cgroup-root") or "")
