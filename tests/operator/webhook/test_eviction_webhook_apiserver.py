"""Acceptance: the real kube-apiserver calls the eviction webhook (on 127.0.0.1) and enforces
its verdicts; the agent's ServiceAccount, with a token bound to a pod on node A, evicts on A
only; others pass untouched; with the operator stopped, failurePolicy decides."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import uuid

import pytest
from control_plane import free_port
from crd_install import install_crds
from k8s_helpers import (
    PAUSE_IMAGE,
    create_namespace,
    create_node,
    create_pod_on_node,
    ensure_service_account,
    request_token,
    service_account_client,
    set_pod_running,
    token_client,
    wait_for,
)
from kubernetes import client
from kubernetes.client import AdmissionregistrationV1Api, CoreV1Api
from kubernetes.client.exceptions import ApiException
from webhook_harness import (
    background_webhook,
    delete_configuration,
    grant_evictions,
    install_configuration,
    webhook_configuration,
)

from oomguard.operator.webhook.webhook_runtime import WebhookOptions

pytestmark = pytest.mark.apiserver

AGENT_SA, OTHER_SA = "oomguard-agent", "drainer"


def evict(core, pod, *, dry_run=False):
    body = client.V1Eviction(
        metadata=client.V1ObjectMeta(name=pod.metadata.name, namespace=pod.metadata.namespace)
    )
    kwargs = {"dry_run": "All"} if dry_run else {}
    core.create_namespaced_pod_eviction(pod.metadata.name, pod.metadata.namespace, body, **kwargs)


def denial(core, pod, *, dry_run=False):
    """The apiserver's message when the eviction is refused; None when it went through."""
    try:
        evict(core, pod, dry_run=dry_run)
    except ApiException as exc:
        assert exc.status == 403, exc.body
        return json.loads(exc.body)["message"]
    return None


def is_evicted(core, pod):
    current = core.read_namespaced_pod(pod.metadata.name, pod.metadata.namespace)
    return current.metadata.deletion_timestamp is not None


class Cluster:
    """Two nodes, the agent's pod on A, a bound agent client, an admin and another SA."""

    def __init__(self, control_plane, agent_sa=AGENT_SA):
        self.cp = control_plane
        self.admin = CoreV1Api(control_plane.api_client)
        self.ns = f"hook-{uuid.uuid4().hex[:6]}"
        create_namespace(self.admin, self.ns)
        self.node_a = create_node(self.admin).metadata.name
        self.node_b = create_node(self.admin).metadata.name
        ensure_service_account(self.admin, self.ns, agent_sa)
        ensure_service_account(self.admin, self.ns, OTHER_SA)
        grant_evictions(control_plane.api_client, self.ns, agent_sa)
        grant_evictions(control_plane.api_client, self.ns, OTHER_SA)
        self.agent_pod = set_pod_running(
            self.admin,
            self.admin.create_namespaced_pod(
                self.ns,
                client.V1Pod(
                    metadata=client.V1ObjectMeta(name="agent-a"),
                    spec=client.V1PodSpec(
                        node_name=self.node_a,
                        service_account_name=agent_sa,
                        containers=[client.V1Container(name="agent", image=PAUSE_IMAGE)],
                    ),
                ),
            ),
        )
        self.agent = CoreV1Api(
            service_account_client(
                control_plane, self.ns, agent_sa, bound_pod=self.agent_pod, create=False
            )
        )
        self.other = CoreV1Api(
            service_account_client(control_plane, self.ns, OTHER_SA, create=False)
        )
        self.agent_sa = agent_sa
        self.agent_username = f"system:serviceaccount:{self.ns}:{agent_sa}"

    def pod_on(self, node):
        return create_pod_on_node(self.admin, self.ns, node)

    def wait_until_enforced(self):
        """The apiserver picks webhook configurations up from a watch: wait for a denial."""
        probe = self.pod_on(self.node_b)

        def denied() -> str | None:
            try:
                evict(self.agent, probe, dry_run=True)
            except ApiException as exc:
                if exc.status == 500:  # failurePolicy Fail before the CA is published
                    return None
                assert exc.status == 403, exc.body
                return str(json.loads(exc.body)["message"])
            return None

        return wait_for("the apiserver to call the webhook", denied, timeout=30)


@pytest.fixture(scope="module")
def cluster(control_plane):
    return Cluster(control_plane)


@pytest.fixture(scope="module")
def webhook(control_plane, cluster):
    name = f"oomguard-evictions-{cluster.ns}"
    port = free_port()
    url = f"https://127.0.0.1:{port}/validate-eviction"
    install_configuration(
        control_plane.api_client, webhook_configuration(name, url, cluster.agent_username)
    )
    options = WebhookOptions(
        port=port,
        host="127.0.0.1",
        agent_usernames=(cluster.agent_username,),
        extra_hosts=("127.0.0.1",),
        configuration=name,
    )
    try:
        with background_webhook(control_plane.api_client, options) as hook:
            cluster.wait_until_enforced()
            yield hook
    finally:
        delete_configuration(control_plane.api_client, name)


def test_generated_ca_is_published_in_the_configuration(control_plane, cluster, webhook):
    config = AdmissionregistrationV1Api(
        control_plane.api_client
    ).read_validating_webhook_configuration(f"oomguard-evictions-{cluster.ns}")
    bundle = base64.b64decode(config.webhooks[0].client_config.ca_bundle)
    assert webhook.running.cert.ca_pem in bundle


def test_token_bound_to_the_agent_pod_names_node_a(cluster):
    token = request_token(cluster.admin, cluster.ns, AGENT_SA, bound_pod=cluster.agent_pod)
    from k8s_helpers import jwt_claims

    assert jwt_claims(token)["kubernetes.io"]["node"]["name"] == cluster.node_a


def test_agent_evicts_a_pod_on_its_own_node(cluster, webhook):
    pod = cluster.pod_on(cluster.node_a)
    assert denial(cluster.agent, pod) is None
    assert is_evicted(cluster.admin, pod)
    assert webhook.running.webhook.timings[-1][0] == "own-node"


def test_agent_is_denied_on_another_node_with_the_webhooks_message(cluster, webhook):
    pod = cluster.pod_on(cluster.node_b)
    message = denial(cluster.agent, pod)
    assert message is not None
    assert (
        f"oomguard: system:serviceaccount:{cluster.ns}:{AGENT_SA} (the oomguard node agent) on "
        f"node {cluster.node_a} may not evict pod {cluster.ns}/{pod.metadata.name}: "
        f"it runs on node {cluster.node_b}"
    ) in message
    assert 'admission webhook "agent-evictions.oomguard.io" denied the request' in message
    assert not is_evicted(cluster.admin, pod)


def test_agent_token_without_a_node_is_denied(control_plane, cluster, webhook):
    unbound = CoreV1Api(
        token_client(control_plane, request_token(cluster.admin, cluster.ns, AGENT_SA))
    )
    pod = cluster.pod_on(cluster.node_a)
    message = denial(unbound, pod)
    assert message is not None
    assert "its token names no node" in message
    assert not is_evicted(cluster.admin, pod)


def test_admin_and_other_service_accounts_evict_anywhere_without_calling_the_webhook(
    cluster, webhook
):
    before = len(webhook.running.webhook.timings)
    for caller in (cluster.admin, cluster.other):
        for node in (cluster.node_a, cluster.node_b):
            pod = cluster.pod_on(node)
            assert denial(caller, pod) is None
            assert is_evicted(cluster.admin, pod)
    # matchConditions keep everyone but the agent away from the webhook
    assert len(webhook.running.webhook.timings) == before


def test_a_brand_new_pod_is_judged_right_even_before_the_watch_delivers_it(cluster, webhook):
    results = []
    for node in (cluster.node_a, cluster.node_b) * 3:
        pod = cluster.pod_on(node)  # evicted at once: the cache may not have it yet
        results.append((node, denial(cluster.agent, pod, dry_run=True) is None))
    assert results == [(n, n == cluster.node_a) for n in (cluster.node_a, cluster.node_b) * 3]


# ------------------------------------------------------------------ the operator process


def run_operator(control_plane, cluster, configuration, port):
    env = {**control_plane.env(), "PYTHONUNBUFFERED": "1"}
    argv = [
        sys.executable, "-m", "oomguard", "operator",
        "--liveness", "",
        f"--webhook-port={port}",
        "--webhook-host=127.0.0.1",
        f"--webhook-agent={cluster.ns}:{cluster.agent_sa}",
        "--webhook-cert-host=127.0.0.1",
        f"--webhook-configuration={configuration}",
    ]  # fmt: skip
    log = open(control_plane.workdir / f"operator-{port}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT), log


@pytest.mark.parametrize("failure_policy", ["Ignore", "Fail"])
def test_with_the_operator_stopped_failure_policy_decides(control_plane, failure_policy):
    """The documented choice is Ignore: own-node evictions keep working while the operator is
    down, at the price of cross-node evictions also passing then. Fail shows the other side.
    Own namespace and agent ServiceAccount: no other webhook configuration matches them."""
    cluster = Cluster(control_plane, agent_sa=f"agent-{failure_policy.lower()}")
    install_crds(control_plane.api_client)
    name = f"oomguard-op-{failure_policy.lower()}-{cluster.ns}"
    port = free_port()
    url = f"https://127.0.0.1:{port}/validate-eviction"
    install_configuration(
        control_plane.api_client,
        webhook_configuration(name, url, cluster.agent_username, failure_policy=failure_policy),
    )
    operator, log = run_operator(control_plane, cluster, name, port)
    try:
        message = cluster.wait_until_enforced()  # the operator published its CA and serves
        assert "may not evict" in message
        assert denial(cluster.agent, cluster.pod_on(cluster.node_a), dry_run=True) is None
        operator.send_signal(signal.SIGTERM)
        assert operator.wait(30) is not None
        with pytest.raises(ConnectionError):
            import socket

            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        own, cross = cluster.pod_on(cluster.node_a), cluster.pod_on(cluster.node_b)
        if failure_policy == "Ignore":
            assert denial(cluster.agent, own) is None
            assert denial(cluster.agent, cross) is None  # the documented trade-off
            assert is_evicted(cluster.admin, own) and is_evicted(cluster.admin, cross)
        else:
            for pod in (own, cross):
                message = denial_or_error(cluster.agent, pod)
                assert 'failed calling webhook "agent-evictions.oomguard.io"' in message
                assert not is_evicted(cluster.admin, pod)
        # others never depend on the webhook
        other = cluster.pod_on(cluster.node_b)
        assert denial(cluster.other, other) is None
    finally:
        if operator.poll() is None:
            operator.kill()
            operator.wait(10)
        log.close()
        delete_configuration(control_plane.api_client, name)


def denial_or_error(core, pod):
    try:
        evict(core, pod)
    except ApiException as exc:
        assert exc.status in (403, 500), exc.body
        return json.loads(exc.body)["message"]
    raise AssertionError("the eviction went through")


def test_the_cluster_cap_reaches_the_agent_as_throttling_with_retry_after(cluster, webhook):
    """Item 10 of "do no harm": past the cluster-wide cap the apiserver answers the agent 429
    with the webhook's Retry-After, which the agent waits out (ApiThrottledError: never a PDB
    block, never a kill)."""
    from oomguard.monitor.actions.pod_evictor import ApiThrottledError, KubernetesEvictionApi
    from oomguard.operator.webhook.eviction_cap import EvictionCap

    hook = webhook.running.webhook
    hook.cap = EvictionCap(1, 3600)
    try:
        first, second = cluster.pod_on(cluster.node_a), cluster.pod_on(cluster.node_a)
        api = KubernetesEvictionApi(cluster.agent)
        assert api.evict(cluster.ns, first.metadata.name, 0, uid=first.metadata.uid) == 201
        with pytest.raises(ApiThrottledError) as throttled:
            api.evict(cluster.ns, second.metadata.name, 0, uid=second.metadata.uid)
        assert 3500 <= throttled.value.retry_after <= 3600
        assert not is_evicted(cluster.admin, second)
        assert hook.timings[-1][0] == "cluster-cap"
    finally:
        hook.cap = None
