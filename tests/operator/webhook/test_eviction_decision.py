"""The pure eviction decision, over plain AdmissionReview dicts."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oomguard.operator.webhook.eviction_decision import (
    NODE_NAME_EXTRA,
    MalformedReview,
    PodPlacement,
    Reason,
    decide,
    needs_pod,
    read_request,
    review_response,
)

AGENT = "system:serviceaccount:oomguard:oomguard-agent"
AGENTS = frozenset({AGENT})


def review(
    *,
    username=AGENT,
    node=("node-a",),
    name="web-1",
    namespace="shop",
    operation="CREATE",
    resource="pods",
    group="",
    sub="eviction",
    uid_precondition=None,
):
    extra = {} if node is None else {NODE_NAME_EXTRA: list(node)}
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name}}
    if uid_precondition:
        eviction["deleteOptions"] = {"preconditions": {"uid": uid_precondition}}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "req-1",
            "kind": {"group": "policy", "version": "v1", "kind": "Eviction"},
            "resource": {"group": group, "version": "v1", "resource": resource},
            "subResource": sub,
            "name": name,
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": username, "uid": "u", "groups": [], "extra": extra},
            "object": eviction,
            "dryRun": False,
        },
    }


ON_A = PodPlacement("pod-uid", "node-a")
ON_B = PodPlacement("pod-uid", "node-b")


def verdict_for(body, placement):
    return decide(read_request(body), placement, AGENTS)


def test_agent_evicts_on_its_own_node():
    verdict = verdict_for(review(), ON_A)
    assert (verdict.allowed, verdict.reason, verdict.message) == (True, Reason.OWN_NODE, "")


def test_agent_denied_on_another_node_with_a_message_naming_both_nodes():
    verdict = verdict_for(review(), ON_B)
    assert not verdict.allowed
    assert verdict.reason is Reason.OTHER_NODE
    assert verdict.message == (
        f"oomguard: {AGENT} (the oomguard node agent) on node node-a may not evict "
        "pod shop/web-1: it runs on node node-b"
    )


@pytest.mark.parametrize("node", [None, (), ("",)])
def test_agent_without_a_node_claim_is_denied(node):
    verdict = verdict_for(review(node=node), ON_A)
    assert (verdict.allowed, verdict.reason) == (False, Reason.NO_NODE_CLAIM)
    assert NODE_NAME_EXTRA in verdict.message


def test_repeated_equal_claims_count_as_one_and_different_ones_are_denied():
    assert verdict_for(review(node=("node-a", "node-a")), ON_A).allowed
    verdict = verdict_for(review(node=("node-a", "node-b")), ON_A)
    assert (verdict.allowed, verdict.reason) == (False, Reason.AMBIGUOUS_NODE_CLAIM)


def test_unknown_and_unscheduled_pods_are_denied_to_the_agent():
    assert verdict_for(review(), None).reason is Reason.POD_UNKNOWN
    unscheduled = verdict_for(review(), PodPlacement("pod-uid", ""))
    assert (unscheduled.allowed, unscheduled.reason) == (False, Reason.POD_UNSCHEDULED)


def test_uid_precondition_must_match_the_current_pod():
    assert verdict_for(review(uid_precondition="pod-uid"), ON_A).allowed
    verdict = verdict_for(review(uid_precondition="old-uid"), ON_A)
    assert (verdict.allowed, verdict.reason) == (False, Reason.UID_MISMATCH)


@pytest.mark.parametrize(
    "username",
    [
        "oomguard-test-admin",
        "system:serviceaccount:kube-system:cluster-autoscaler",
        "system:serviceaccount:other:oomguard-agent",  # same name, other namespace
        "",
    ],
)
@pytest.mark.parametrize("placement", [ON_A, ON_B, None, PodPlacement("x", "")])
@pytest.mark.parametrize("node", [None, ("node-b",), ("node-a", "node-b")])
def test_other_users_pass_untouched_whatever_the_pod(username, placement, node):
    body = review(username=username, node=node)
    verdict = verdict_for(body, placement)
    assert (verdict.allowed, verdict.reason) == (True, Reason.OTHER_USER)
    assert not needs_pod(read_request(body), AGENTS)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("operation", "UPDATE"),
        ("resource", "nodes"),
        ("sub", ""),
        ("sub", "status"),
        ("group", "x"),
    ],
)
def test_misrouted_requests_from_the_agent_are_not_judged(field, value):
    body = review(**{field: value})
    verdict = verdict_for(body, ON_B)
    assert (verdict.allowed, verdict.reason) == (True, Reason.NOT_AN_EVICTION)
    assert not needs_pod(read_request(body), AGENTS)


def test_needs_pod_only_when_the_pod_decides():
    assert needs_pod(read_request(review()), AGENTS)
    assert not needs_pod(read_request(review(node=None)), AGENTS)
    assert not needs_pod(read_request(review(node=("a", "b"))), AGENTS)


def test_exhaustive_truth_table_for_the_agent():
    """Allowed exactly when: one node claim, pod known, scheduled, same node, uid matches."""
    claims = [None, ("node-a",), ("node-a", "node-b")]
    placements = [None, PodPlacement("u1", ""), PodPlacement("u1", "node-a"), ON_B]
    preconditions = [None, "u1", "u2"]
    for node, placement, precondition in itertools.product(claims, placements, preconditions):
        verdict = verdict_for(review(node=node, uid_precondition=precondition), placement)
        expected = (
            node == ("node-a",)
            and placement is not None
            and placement.node_name == "node-a"
            and precondition in (None, placement.uid)
        )
        assert verdict.allowed is expected, (node, placement, precondition, verdict)
        assert verdict.reason.allows is verdict.allowed
        assert bool(verdict.message) is (not verdict.allowed)


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "review",
        {},
        {"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}},
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"},
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": ""}},
        {"apiVersion": "admission.k8s.io/v1", "kind": "Other", "request": {"uid": "x"}},
    ],
)
def test_malformed_reviews_are_refused(body):
    with pytest.raises(MalformedReview):
        read_request(body)


@given(
    st.dictionaries(
        st.sampled_from(["uid", "userInfo", "resource", "name", "namespace", "object", "x"]),
        st.none()
        | st.text()
        | st.integers()
        | st.lists(st.text())
        | st.dictionaries(st.text(), st.text()),
    )
)
def test_junk_requests_never_crash_and_never_allow_the_agent_cross_node(request_fields):
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": request_fields,
    }
    try:
        request = read_request(body)
    except MalformedReview:
        return
    verdict = decide(request, ON_B, AGENTS)
    if request.username == AGENT and request.is_pod_eviction_create:
        assert not verdict.allowed


NODES = st.sampled_from(["node-a", "node-b", "node-c", ""])
UIDS = st.sampled_from(["pod-uid", "other-uid"])


@given(
    node=st.none() | st.lists(NODES, max_size=3).map(tuple),
    placement=st.none() | st.builds(PodPlacement, UIDS, NODES),
    uid_precondition=st.none() | UIDS,
    name=st.text(min_size=1, max_size=20),
    namespace=st.text(min_size=1, max_size=20),
)
def test_agent_evictions_are_allowed_exactly_on_its_own_node(
    node, placement, uid_precondition, name, namespace
):
    """Real agent eviction requests (CREATE pods/eviction by the agent), every combination
    of node claims, pod placement and UID precondition: allowed exactly when the token names
    one node, the pod is known, scheduled there, and is the pod the eviction names."""
    body = review(node=node, name=name, namespace=namespace, uid_precondition=uid_precondition)
    request = read_request(body)
    assert request.username == AGENT and request.is_pod_eviction_create
    claims = {c for c in (node or ()) if c}
    expected = (
        len(claims) == 1
        and placement is not None
        and placement.node_name in claims
        and (uid_precondition is None or uid_precondition == placement.uid)
    )
    verdict = decide(request, placement, AGENTS)
    assert verdict.allowed is expected, (verdict, claims, placement, uid_precondition)
    if expected:
        assert verdict.reason is Reason.OWN_NODE
    elif (
        len(claims) == 1
        and placement is not None
        and placement.node_name
        and placement.node_name not in claims
        and uid_precondition in (None, placement.uid)
    ):
        assert verdict.reason is Reason.OTHER_NODE
        assert f"runs on node {placement.node_name}" in verdict.message
    assert needs_pod(request, AGENTS) is (len(claims) == 1)


def test_review_response_shapes():
    allowed = review_response("abc", verdict_for(review(), ON_A))
    assert allowed == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "abc", "allowed": True},
    }
    denied = review_response("abc", verdict_for(review(), ON_B))["response"]
    assert denied["allowed"] is False
    assert denied["status"]["code"] == 403
    assert denied["status"]["reason"] == "Forbidden"
    assert "runs on node node-b" in denied["status"]["message"]
