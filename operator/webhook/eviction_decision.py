"""Whether one eviction may go ahead: AdmissionReview in, allowed or denied (with why) out.

RBAC cannot scope a DaemonSet's ``pods/eviction`` permission to its node, so the agent's
ServiceAccount could evict anywhere. A pod-bound ServiceAccount token names the node its pod
runs on (user-info extra ``authentication.kubernetes.io/node-name``, signed by the apiserver);
an eviction by the agent is allowed only when that node is the target pod's ``spec.nodeName``.

Everything here is pure: the adapter reads the request, looks the pod up in its watch-backed
cache (only when :func:`needs_pod` says the answer depends on it) and turns the verdict into
the AdmissionReview response.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name"
ADMISSION_API_VERSION = "admission.k8s.io/v1"
FORBIDDEN = 403
TOO_MANY_REQUESTS = 429


class MalformedReview(ValueError):
    """The body is not an AdmissionReview v1 request the webhook can answer."""


class Reason(enum.Enum):
    """Why the webhook decided as it did (also the metric label and the log word)."""

    OTHER_USER = "other-user"  # not the agent: never our business
    NOT_AN_EVICTION = "not-an-eviction"  # misrouted request: not ours to judge
    OWN_NODE = "own-node"  # the agent evicts a pod on its own node
    NO_NODE_CLAIM = "no-node-claim"  # the agent's token is not bound to a pod on a node
    AMBIGUOUS_NODE_CLAIM = "ambiguous-node-claim"  # several different node names
    OTHER_NODE = "other-node"  # the pod runs elsewhere
    POD_UNSCHEDULED = "pod-unscheduled"  # the pod has no node yet
    POD_UNKNOWN = "pod-unknown"  # neither the cache nor the apiserver knows the pod
    UID_MISMATCH = "uid-mismatch"  # the eviction names a pod uid the current pod does not have
    CLUSTER_CAP = "cluster-cap"  # the agents' evictions across the cluster are at the cap

    @property
    def allows(self) -> bool:
        return self in (Reason.OTHER_USER, Reason.NOT_AN_EVICTION, Reason.OWN_NODE)


@dataclass(frozen=True)
class EvictionRequest:
    """What the decision needs from one AdmissionReview."""

    uid: str
    username: str
    node_claims: tuple[str, ...]  # the token's node-name extra values, as sent
    namespace: str
    pod_name: str
    is_pod_eviction_create: bool
    precondition_uid: str | None  # Eviction.deleteOptions.preconditions.uid, when set


@dataclass(frozen=True)
class PodPlacement:
    """The cached facts about a pod: which pod (uid) and where it runs ("" = unscheduled)."""

    uid: str
    node_name: str


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: Reason
    message: str
    retry_after: int | None = None  # a denial to retry later (429), not a refusal (403)


def read_request(review: Any) -> EvictionRequest:
    """The fields of an AdmissionReview v1 request; MalformedReview when it is not one."""
    if not isinstance(review, Mapping):
        raise MalformedReview("the body is not a JSON object")
    if review.get("apiVersion") != ADMISSION_API_VERSION or review.get("kind") != "AdmissionReview":
        raise MalformedReview(
            f"expected {ADMISSION_API_VERSION} AdmissionReview, got "
            f"{review.get('apiVersion')!r} {review.get('kind')!r}"
        )
    request = review.get("request")
    if not isinstance(request, Mapping):
        raise MalformedReview("AdmissionReview without a request")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise MalformedReview("AdmissionReview request without a uid")
    user = request.get("userInfo")
    user = user if isinstance(user, Mapping) else {}
    username = user.get("username")
    extra = user.get("extra")
    extra = extra if isinstance(extra, Mapping) else {}
    claims = extra.get(NODE_NAME_EXTRA) or []
    if isinstance(claims, str):
        claims = [claims]
    resource = request.get("resource")
    resource = resource if isinstance(resource, Mapping) else {}
    is_eviction = (
        request.get("operation") == "CREATE"
        and resource.get("group", "") == ""
        and resource.get("resource") == "pods"
        and request.get("subResource") == "eviction"
    )
    return EvictionRequest(
        uid=uid,
        username=username if isinstance(username, str) else "",
        node_claims=tuple(str(c) for c in claims if isinstance(c, str)),
        namespace=_str(request.get("namespace")),
        pod_name=_str(request.get("name")),
        is_pod_eviction_create=is_eviction,
        precondition_uid=_precondition_uid(request.get("object")),
    )


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _precondition_uid(eviction: Any) -> str | None:
    if not isinstance(eviction, Mapping):
        return None
    options = eviction.get("deleteOptions")
    preconditions = options.get("preconditions") if isinstance(options, Mapping) else None
    uid = preconditions.get("uid") if isinstance(preconditions, Mapping) else None
    return uid if isinstance(uid, str) and uid else None


def needs_pod(request: EvictionRequest, agent_usernames: Collection[str]) -> bool:
    """Whether the verdict depends on the target pod (so the adapter must look it up)."""
    return (
        request.is_pod_eviction_create
        and request.username in agent_usernames
        and _single_claim(request) is not None
    )


def _single_claim(request: EvictionRequest) -> str | None:
    names = {c for c in request.node_claims if c}
    return names.pop() if len(names) == 1 else None


def decide(
    request: EvictionRequest,
    placement: PodPlacement | None,
    agent_usernames: Collection[str],
) -> Verdict:
    """The verdict for one request; ``placement`` is the target pod (None: unknown)."""
    if request.username not in agent_usernames:
        return Verdict(True, Reason.OTHER_USER, "")
    if not request.is_pod_eviction_create:
        return Verdict(True, Reason.NOT_AN_EVICTION, "")
    pod = f"pod {request.namespace}/{request.pod_name}"
    who = f"{request.username} (the oomguard node agent)"
    if not any(request.node_claims):
        return _deny(
            Reason.NO_NODE_CLAIM,
            f"{who} may only evict pods on its own node, but its token names no node "
            f"({NODE_NAME_EXTRA} is missing: use the pod-bound token mounted in the agent's pod)",
        )
    claim = _single_claim(request)
    if claim is None:
        return _deny(
            Reason.AMBIGUOUS_NODE_CLAIM,
            f"{who}: the token names several nodes {sorted(set(request.node_claims))}",
        )
    if placement is None:
        return _deny(
            Reason.POD_UNKNOWN,
            f"{who} on node {claim} may not evict {pod}: the pod is not known "
            "(not in the webhook's cache, not found by the apiserver)",
        )
    if request.precondition_uid is not None and request.precondition_uid != placement.uid:
        return _deny(
            Reason.UID_MISMATCH,
            f"{who} on node {claim} may not evict {pod}: the eviction names uid "
            f"{request.precondition_uid}, the pod now is {placement.uid}",
        )
    if not placement.node_name:
        return _deny(
            Reason.POD_UNSCHEDULED,
            f"{who} on node {claim} may not evict {pod}: the pod is not scheduled to a node",
        )
    if placement.node_name != claim:
        return _deny(
            Reason.OTHER_NODE,
            f"{who} on node {claim} may not evict {pod}: it runs on node {placement.node_name}",
        )
    return Verdict(True, Reason.OWN_NODE, "")


def capped(request: EvictionRequest, retry_after: int, cap: int, window: float) -> Verdict:
    """An own-node eviction held back by the cluster-wide cap: 429 with Retry-After, which
    the agent takes as the API server's throttling (never a PodDisruptionBudget block, so it
    never leads to a kill)."""
    return Verdict(
        False,
        Reason.CLUSTER_CAP,
        f"oomguard: the node agents have had {cap} evictions in the last {window:g} s across "
        f"the cluster (evictionWebhook.clusterEvictionCap); pod {request.namespace}/"
        f"{request.pod_name} may be evicted in {retry_after} s",
        retry_after,
    )


def _deny(reason: Reason, message: str) -> Verdict:
    return Verdict(False, reason, f"oomguard: {message}")


def review_response(uid: str, verdict: Verdict) -> dict[str, Any]:
    """The AdmissionReview v1 answer; a denial carries 403 and the message the caller sees,
    or 429 with ``retryAfterSeconds`` (the apiserver's Retry-After) when it is for later."""
    response: dict[str, Any] = {"uid": uid, "allowed": verdict.allowed}
    if not verdict.allowed and verdict.retry_after is not None:
        response["status"] = {
            "code": TOO_MANY_REQUESTS,
            "reason": "TooManyRequests",
            "message": verdict.message,
            "details": {"retryAfterSeconds": verdict.retry_after},
        }
    elif not verdict.allowed:
        response["status"] = {
            "code": FORBIDDEN,
            "reason": "Forbidden",
            "message": verdict.message,
        }
    return {"apiVersion": ADMISSION_API_VERSION, "kind": "AdmissionReview", "response": response}
