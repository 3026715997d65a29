"""RBAC proven from the chart's own objects, on the real apiserver.

The chart's ServiceAccounts, ClusterRoles and ClusterRoleBindings are created as rendered. Then:
SubjectAccessReviews show each ServiceAccount may do exactly what its component does and
nothing dangerous; the rules are no wider than that list; and the agent's Kubernetes adapters
and the kopf operator run with those ServiceAccounts' tokens (TokenRequest) without one 403.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from chart_cluster import ObjectApi, create_labelled_namespace, install_crds
from chart_tools import by_kind, one, render
from control_plane import ControlPlane
from k8s_helpers import (
    PAUSE_IMAGE,
    create_namespace,
    create_node,
    create_pod_on_node,
    request_token,
    token_client,
    unique_name,
    wait_for,
)
from kubernetes import client
from kubernetes.client import AuthorizationV1Api, CoreV1Api, CustomObjectsApi
from kubernetes.client.rest import ApiException

pytestmark = [pytest.mark.helm, pytest.mark.apiserver]

GROUP, VERSION = "oomguard.io", "v1alpha1"

# A 403 as the API reports it ("(403)", "403 Forbidden", "status: 403"), never the digits of
# a timestamp's milliseconds (",403]"), which once failed this check at random.
REFUSED = re.compile(r"[Ff]orbidden|[\s(:]403[\s):,]")


def refused(log: str) -> bool:
    """Whether a log shows the API server refusing a request."""
    return REFUSED.search(log) is not None


# (verb, group, resource, subresource): every request the component makes.
AGENT_NEEDS = [
    ("list", "", "pods", ""),
    ("watch", "", "pods", ""),
    ("create", "", "pods", "eviction"),
    ("create", "", "events", ""),
    ("list", GROUP, "nodememoryreserves", ""),
    ("watch", GROUP, "nodememoryreserves", ""),
    ("patch", GROUP, "nodememoryreserves", "status"),
]
OPERATOR_NEEDS = [
    ("list", "", "nodes", ""),
    ("watch", "", "nodes", ""),
    ("list", GROUP, "memoryreservepolicies", ""),
    ("watch", GROUP, "memoryreservepolicies", ""),
    ("patch", GROUP, "memoryreservepolicies", "status"),
    ("list", GROUP, "nodememoryreserves", ""),
    ("watch", GROUP, "nodememoryreserves", ""),
    ("create", GROUP, "nodememoryreserves", ""),
    ("patch", GROUP, "nodememoryreserves", ""),
    ("delete", GROUP, "nodememoryreserves", ""),
    ("create", "", "events", ""),
    ("list", "apiextensions.k8s.io", "customresourcedefinitions", ""),
    ("watch", "apiextensions.k8s.io", "customresourcedefinitions", ""),
    # The memory-pressure taint (on by default): read a Node, patch its spec.taints.
    ("get", "", "nodes", ""),
    ("patch", "", "nodes", ""),
    # The eviction webhook (on by default): its pod placement cache.
    ("get", "", "pods", ""),
    ("list", "", "pods", ""),
    ("watch", "", "pods", ""),
]
# The webhook publishes its generated CA into its own configuration, and only that one.
WEBHOOK_CONFIGURATION_VERBS = ("get", "patch")
DANGEROUS_FOR_BOTH = [
    ("delete", "", "pods", ""),
    ("deletecollection", "", "pods", ""),
    ("create", "", "pods", ""),
    ("patch", "", "pods", ""),
    ("create", "", "pods", "exec"),
    ("get", "", "secrets", ""),
    ("list", "", "secrets", ""),
    ("get", "", "configmaps", ""),
    ("update", "", "nodes", ""),
    ("delete", "", "nodes", ""),
    ("patch", "", "nodes", "status"),
    ("create", "", "serviceaccounts", "token"),
    ("create", "apiextensions.k8s.io", "customresourcedefinitions", ""),
    ("update", "apiextensions.k8s.io", "customresourcedefinitions", ""),
    ("delete", "apiextensions.k8s.io", "customresourcedefinitions", ""),
    ("create", "monitoring.coreos.com", "servicemonitors", ""),
    ("create", "rbac.authorization.k8s.io", "clusterroles", ""),
    ("bind", "rbac.authorization.k8s.io", "clusterroles", ""),
    ("escalate", "rbac.authorization.k8s.io", "clusterroles", ""),
    ("impersonate", "", "serviceaccounts", ""),
    ("create", "apps", "daemonsets", ""),
    ("create", "kopf.dev", "clusterkopfpeerings", ""),
    ("create", GROUP, "memoryreservepolicies", ""),
    ("update", GROUP, "memoryreservepolicies", ""),
    ("delete", GROUP, "memoryreservepolicies", ""),
]
AGENT_DENIED = [
    *DANGEROUS_FOR_BOTH,
    ("get", "", "pods", ""),  # it lists and watches; it never needs one pod by name
    ("get", "", "nodes", ""),  # node memory comes from /proc/meminfo
    ("list", "", "nodes", ""),
    ("patch", "", "nodes", ""),  # the taint is the operator's: agents never write Nodes
    ("create", GROUP, "nodememoryreserves", ""),
    ("patch", GROUP, "nodememoryreserves", ""),  # spec is the operator's
    ("update", GROUP, "nodememoryreserves", ""),
    ("delete", GROUP, "nodememoryreserves", ""),
    ("list", GROUP, "memoryreservepolicies", ""),
    ("patch", "", "events", ""),
]
OPERATOR_DENIED = [
    *DANGEROUS_FOR_BOTH,
    ("create", "", "pods", "eviction"),
    ("patch", GROUP, "memoryreservepolicies", ""),  # users' objects: status only
    ("patch", "admissionregistration.k8s.io", "validatingwebhookconfigurations", ""),
    ("create", "admissionregistration.k8s.io", "validatingwebhookconfigurations", ""),
    ("patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", ""),
    ("patch", GROUP, "nodememoryreserves", "status"),  # the agents'
    ("list", "", "namespaces", ""),  # cluster-wide kopf does not scan namespaces
]


@pytest.fixture(scope="module")
def chart_rbac(control_plane: ControlPlane, helm_home: Path) -> Iterator[dict[str, Any]]:
    """The chart's CRDs, ServiceAccounts, ClusterRoles and bindings, created for real."""
    cp = control_plane
    namespace = unique_name("rbac")
    create_labelled_namespace(
        cp.api_client, namespace, {"pod-security.kubernetes.io/enforce": "privileged"}
    )
    release = unique_name("rb")
    objects = render(helm_home, namespace=namespace, release=release)
    install_crds(cp.api_client, by_kind(objects, "CustomResourceDefinition"))
    api = ObjectApi(cp.api_client)
    created = []
    for kind in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding"):
        for obj in by_kind(objects, kind):
            api.create(obj, namespace, dry_run=False)
            created.append(obj)
    accounts = {
        sa["metadata"]["labels"]["app.kubernetes.io/component"]: sa["metadata"]["name"]
        for sa in by_kind(objects, "ServiceAccount")
    }
    # The RBAC authorizer reads bindings from an informer: wait until it has seen ours, or a
    # review right after creation is denied for a reason that is not the chart's.
    for component, needs in (("agent", AGENT_NEEDS), ("operator", OPERATOR_NEEDS)):
        _wait_until(lambda c=component, n=needs: _allowed(cp, namespace, accounts[c], *n[0]))
    yield {"namespace": namespace, "objects": objects, "accounts": accounts, "release": release}
    for obj in reversed(created):
        api.delete(obj, namespace)


def _wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "RBAC bindings not in effect after 30 s"
        time.sleep(0.05)


def _allowed(
    cp: ControlPlane,
    namespace: str,
    account: str,
    verb: str,
    group: str,
    resource: str,
    sub: str,
    name: str = "",
) -> bool:
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=f"system:serviceaccount:{namespace}:{account}",
            groups=[
                "system:serviceaccounts",
                f"system:serviceaccounts:{namespace}",
                "system:authenticated",
            ],
            resource_attributes=client.V1ResourceAttributes(
                verb=verb,
                group=group,
                resource=resource,
                subresource=sub or None,
                name=name or None,
                namespace=""
                if resource
                in {"nodes", "customresourcedefinitions", "validatingwebhookconfigurations"}
                else "default",
            ),
        )
    )
    result = AuthorizationV1Api(cp.api_client).create_subject_access_review(review)
    return bool(result.status.allowed)


@pytest.mark.parametrize(
    ("component", "needs", "denied"),
    [("agent", AGENT_NEEDS, AGENT_DENIED), ("operator", OPERATOR_NEEDS, OPERATOR_DENIED)],
)
def test_subject_access_reviews(
    component: str,
    needs: list[tuple[str, str, str, str]],
    denied: list[tuple[str, str, str, str]],
    control_plane: ControlPlane,
    chart_rbac: dict[str, Any],
) -> None:
    ns, account = chart_rbac["namespace"], chart_rbac["accounts"][component]
    missing = [n for n in needs if not _allowed(control_plane, ns, account, *n)]
    assert missing == [], f"{component} lacks {missing}"
    granted = [d for d in denied if _allowed(control_plane, ns, account, *d)]
    assert granted == [], f"{component} may {granted}"


def _webhook_configuration(objects: list[dict[str, Any]]) -> str:
    name: str = one(objects, "ValidatingWebhookConfiguration")["metadata"]["name"]
    return name


def test_webhook_configuration_access_is_by_name_only(
    control_plane: ControlPlane, chart_rbac: dict[str, Any]
) -> None:
    ns, account = chart_rbac["namespace"], chart_rbac["accounts"]["operator"]
    own = _webhook_configuration(chart_rbac["objects"])
    res = ("admissionregistration.k8s.io", "validatingwebhookconfigurations", "")
    for verb in WEBHOOK_CONFIGURATION_VERBS:
        assert _allowed(control_plane, ns, account, verb, *res, name=own)
        assert not _allowed(control_plane, ns, account, verb, *res, name="someone-elses")
    assert not _allowed(control_plane, ns, account, "delete", *res, name=own)


@pytest.mark.parametrize(
    ("component", "needs"), [("agent", AGENT_NEEDS), ("operator", OPERATOR_NEEDS)]
)
def test_cluster_roles_grant_nothing_beyond_the_needs(
    component: str, needs: list[tuple[str, str, str, str]], chart_rbac: dict[str, Any]
) -> None:
    """Fewest verbs: every (verb, resource) the component's ClusterRoles grant is one it uses."""
    objects = chart_rbac["objects"]
    account = chart_rbac["accounts"][component]
    bound = {
        b["roleRef"]["name"]
        for b in by_kind(objects, "ClusterRoleBinding")
        if any(s["name"] == account for s in b["subjects"])
    }
    roles = [r for r in by_kind(objects, "ClusterRole") if r["metadata"]["name"] in bound]
    assert roles
    granted = set()
    for role in roles:
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
            for group in rule["apiGroups"]:
                for res in rule["resources"]:
                    resource, _, sub = res.partition("/")
                    for verb in rule["verbs"]:
                        for name in rule.get("resourceNames", [""]):
                            granted.add((verb, group, resource, sub, name))
    expected = {(*n, "") for n in needs}
    if component == "operator":
        own = _webhook_configuration(objects)
        expected |= {
            (verb, "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", own)
            for verb in WEBHOOK_CONFIGURATION_VERBS
        }
    assert granted == expected


def _agent_pod(core: CoreV1Api, namespace: str, node: str, account: str) -> client.V1Pod:
    """The agent's own pod on `node`, so its token is bound to that pod (and node)."""
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name=unique_name("agent")),
        spec=client.V1PodSpec(
            node_name=node,
            service_account_name=account,
            containers=[client.V1Container(name="agent", image=PAUSE_IMAGE)],
        ),
    )
    created: client.V1Pod = core.create_namespaced_pod(namespace, pod)
    return created


def test_agent_adapters_run_as_the_chart_service_account(
    control_plane: ControlPlane, chart_rbac: dict[str, Any]
) -> None:
    """The agent's real Kubernetes adapters, with a pod-bound token of the chart's agent SA."""
    from oomguard.monitor.actions.pod_evictor import KubernetesEvictionApi
    from oomguard.monitor.feedback.kube_events import KubeEventPoster, PodRef
    from oomguard.monitor.kube.node_reserve import KubernetesReserveSource, NodeReserveStatusWriter
    from oomguard.monitor.kube.pod_watch import KubernetesPodSource

    cp = control_plane
    admin = CoreV1Api(cp.api_client)
    ns = chart_rbac["namespace"]
    node = create_node(admin).metadata.name
    # waits for the namespace's default ServiceAccount, without which the pod is refused
    workload_ns = create_namespace(admin, unique_name("work"))
    victim = create_pod_on_node(admin, workload_ns, node)
    agent_pod = _agent_pod(admin, ns, node, chart_rbac["accounts"]["agent"])
    token = request_token(admin, ns, chart_rbac["accounts"]["agent"], bound_pod=agent_pod)
    as_agent = token_client(cp, token)
    core, custom = client.CoreV1Api(as_agent), client.CustomObjectsApi(as_agent)

    # The operator's side (as admin): this node's NodeMemoryReserve exists.
    CustomObjectsApi(cp.api_client).create_cluster_custom_object(
        GROUP,
        VERSION,
        "nodememoryreserves",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "NodeMemoryReserve",
            "metadata": {"name": node},
            "spec": {
                "nodeName": node,
                "sourcePolicy": "default",
                "nodeMemoryBytes": 8 * 2**30,
                "reserveBytes": 2**30,
                "monitor": {
                    "event": {"enabled": True},
                    "threshold": {
                        "enabled": True,
                        "usagePercent": 95,
                        "intervalMilliseconds": 1000,
                    },
                    "pressure": {
                        "enabled": True,
                        "stallMilliseconds": 100,
                        "windowMilliseconds": 1000,
                    },
                },
                "eviction": {
                    "policy": "NewestFirst",
                    "gracePeriodSeconds": 0,
                    "bufferBytes": 0,
                    "maxEvictionsPerMinute": 10,
                    "killFallback": {"enabled": True, "waitSeconds": 10},
                    "protectedNamespaces": [],
                    "protectDaemonSetPods": True,
                },
                "dryRun": False,
            },
        },
    )

    pods = KubernetesPodSource(core)
    listing = pods.list_pods(node)
    names = {p["metadata"]["name"] for p in listing.items}
    assert victim.metadata.name in names and agent_pod.metadata.name in names
    events = list(pods.watch_pods(node, listing.resource_version, timeout_seconds=1))
    assert all(e.get("type") != "ERROR" for e in events)

    reserves = KubernetesReserveSource(custom)
    mine = reserves.list_reserve(node)
    assert mine.item is not None and mine.item["metadata"]["name"] == node
    list(reserves.watch_reserve(node, mine.resource_version, timeout_seconds=1))
    assert NodeReserveStatusWriter(custom, node).write({"usageBytes": 123}) is True

    poster = KubeEventPoster(core, node)
    ref = PodRef(workload_ns, victim.metadata.name, victim.metadata.uid)
    assert poster.post(ref, "test event from the agent's RBAC test") is True
    assert poster.failed == 0

    evictions = KubernetesEvictionApi(core)
    # another pod of the same name (a replacement) is never hit: the UID precondition fails
    other = "00000000-0000-0000-0000-000000000000"
    assert evictions.evict(workload_ns, victim.metadata.name, 0, uid=other) == 409
    assert evictions.evict(workload_ns, victim.metadata.name, 0, uid=victim.metadata.uid) == 201

    # And the refusals are real 403s, not errors of another kind.
    with pytest.raises(ApiException) as forbidden:
        core.delete_namespaced_pod(victim.metadata.name, workload_ns)
    assert forbidden.value.status == 403
    with pytest.raises(ApiException) as forbidden:
        core.list_namespaced_secret(workload_ns)
    assert forbidden.value.status == 403


def _token_kubeconfig(cp: ControlPlane, token: str, path: Path) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {"server": cp.server, "certificate-authority": str(cp.ca_file)},
            }
        ],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(json.dumps(doc))
    return path


def test_operator_runs_as_the_chart_service_account(
    control_plane: ControlPlane,
    chart_rbac: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """kopf + the operator's handlers with the operator SA's token: a policy resolves into a
    NodeMemoryReserve and a policy status, and nothing is forbidden along the way."""
    from kopf.testing import KopfRunner

    from oomguard.operator import handlers  # noqa: F401 (registers the handlers)

    cp = control_plane
    admin_core, admin_custom = CoreV1Api(cp.api_client), CustomObjectsApi(cp.api_client)
    ns, account = chart_rbac["namespace"], chart_rbac["accounts"]["operator"]
    token = request_token(admin_core, ns, account)
    monkeypatch.setenv("KUBECONFIG", str(_token_kubeconfig(cp, token, tmp_path / "kubeconfig")))

    label = f"rbac-{uuid.uuid4().hex[:6]}"
    node = create_node(admin_core, labels={"oomguard.test/rbac": label}).metadata.name
    policy_name = unique_name("rbac-policy")
    args = ["run", "--standalone", "--all-namespaces", "-m", "oomguard.operator.handlers"]
    with KopfRunner(args, timeout=120) as runner:
        admin_custom.create_cluster_custom_object(
            GROUP,
            VERSION,
            "memoryreservepolicies",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "MemoryReservePolicy",
                "metadata": {"name": policy_name},
                "spec": {
                    "priority": 1000,
                    "nodeSelector": {"matchLabels": {"oomguard.test/rbac": label}},
                    "reserve": {"absolute": "1Gi"},
                },
            },
        )

        def resolved() -> dict[str, Any] | None:
            try:
                reserve: dict[str, Any] = admin_custom.get_cluster_custom_object(
                    GROUP, VERSION, "nodememoryreserves", node
                )
            except ApiException:
                return None
            return reserve if reserve["spec"].get("sourcePolicy") == policy_name else None

        wait_for("the NodeMemoryReserve from the policy", resolved, timeout=60)

        def status_written() -> dict[str, Any] | None:
            policy = admin_custom.get_cluster_custom_object(
                GROUP, VERSION, "memoryreservepolicies", policy_name
            )
            status: dict[str, Any] = policy.get("status") or {}
            return status if status.get("nodesWon") == 1 else None

        wait_for("the policy status", status_written, timeout=60)
        admin_custom.delete_cluster_custom_object(
            GROUP, VERSION, "memoryreservepolicies", policy_name
        )
    assert runner.exception is None, runner.exception
    output = runner.output
    assert "Reconciler" in output or "reconcil" in output.lower() or "Handler" in output, (
        f"kopf's log was not captured: {output[:2000]!r}"
    )
    assert not refused(output), output
    assert "Not enough permissions" not in output, output


def _http_ok(url: str) -> str | None:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return str(resp.read().decode()) if resp.status == 200 else None
    except OSError:
        return None


def test_operator_command_runs_with_the_chart_args(
    control_plane: ControlPlane, chart_rbac: dict[str, Any], tmp_path: Path, helm_home: Path
) -> None:
    """`oomguard operator` as the container runs it: the Deployment's own args (ports moved to
    free ones), the operator ServiceAccount's token; its liveness and metrics endpoints answer
    where the chart's probes and Service point, and it resolves a policy with no 403."""
    import signal
    import subprocess
    import sys

    from control_plane import free_port

    cp = control_plane
    admin_core, admin_custom = CoreV1Api(cp.api_client), CustomObjectsApi(cp.api_client)
    # The eviction webhook (its own TLS files and configuration) is tested with its code; here
    # the operator runs the way the chart starts it without the webhook.
    without_webhook = render(
        helm_home,
        set_values=["evictionWebhook.enabled=false"],
        namespace=chart_rbac["namespace"],
        release=chart_rbac["release"],
    )
    deployment = one(without_webhook, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    probe = container["livenessProbe"]["httpGet"]
    assert probe["port"] == "health"
    health, metrics = free_port(), free_port()
    args = []
    for arg in container["args"]:
        arg = arg.replace(f"--metrics-port={ports['http']}", f"--metrics-port={metrics}")
        arg = arg.replace(f"0.0.0.0:{ports['health']}/", f"127.0.0.1:{health}/")
        args.append(arg)
    assert (
        f"--metrics-port={metrics}" in args
        and f"--liveness=http://127.0.0.1:{health}{probe['path']}" in args
    )

    token = request_token(admin_core, chart_rbac["namespace"], chart_rbac["accounts"]["operator"])
    kubeconfig = _token_kubeconfig(cp, token, tmp_path / "kubeconfig")
    label = f"cmd-{uuid.uuid4().hex[:6]}"
    node = create_node(admin_core, labels={"oomguard.test/rbac": label}).metadata.name
    policy_name = unique_name("cmd-policy")
    log = tmp_path / "operator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "oomguard", *args],
            env={"PATH": "/usr/bin:/bin", "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            "the operator's liveness endpoint",
            lambda: _http_ok(f"http://127.0.0.1:{health}{probe['path']}"),
            timeout=60,
        )
        admin_custom.create_cluster_custom_object(
            GROUP,
            VERSION,
            "memoryreservepolicies",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "MemoryReservePolicy",
                "metadata": {"name": policy_name},
                "spec": {
                    "priority": 2000,
                    "nodeSelector": {"matchLabels": {"oomguard.test/rbac": label}},
                    "reserve": {"absolute": "1Gi"},
                },
            },
        )

        def resolved() -> bool:
            try:
                reserve = admin_custom.get_cluster_custom_object(
                    GROUP, VERSION, "nodememoryreserves", node
                )
            except ApiException:
                return False
            return bool(reserve["spec"].get("sourcePolicy") == policy_name)

        wait_for("the NodeMemoryReserve from the policy", resolved, timeout=60)
        exposition = wait_for(
            "metrics", lambda: _http_ok(f"http://127.0.0.1:{metrics}/metrics"), timeout=10
        )
        assert "oomguard_" in exposition
        admin_custom.delete_cluster_custom_object(
            GROUP, VERSION, "memoryreservepolicies", policy_name
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    output = log.read_text(errors="replace")
    assert not refused(output), output[-5000:]
    assert "Not enough permissions" not in output, output[-5000:]


def test_refused_reads_api_refusals_not_timestamps() -> None:
    assert refused("(403)\nReason: Forbidden")
    assert refused("HTTP response headers ... status: 403, body")
    assert not refused("[2026-12-06 08:37:49,403] kopf.objects [INFO] Handler succeeded.")
