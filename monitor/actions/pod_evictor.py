"""Evict pods through the Eviction API (policy/v1), and kill a pod's cgroup as the last resort.

Why the Eviction API first: it honours PodDisruptionBudgets and graceful termination, and the
pod's controller sees an ordinary eviction. Outcomes per pod:

- 201/200: evicted. 404: already gone, counts as done.
- 429 naming a disruption budget: a PodDisruptionBudget blocks it: move on to the next
  candidate in newest-first order.
- 429 without one (API Priority and Fairness throttling, ``Retry-After``): not a block. The
  round ends as if rate limited, nobody is chosen (so nobody can be killed for it), and no
  eviction is tried before the server's ``Retry-After`` has passed.
- other errors (403, 409, 500, 503, 504...): retried a few times, then FAILED and the next
  candidate; the node agent backs a failed pod off and counts it toward the kill fallback
  exactly like a PDB-blocked one.
- API unreachable: the pod stays chosen (its memory counts as covered) and the agent falls back
  to ``cgroup.kill`` for it after the bounded wait; no further API calls this round.

A rate limit (token bucket) caps evictions per minute; a token is spent only when a pod was
actually evicted, so PDB-blocked attempts do not eat the budget. Kills have a bucket of their
own at the same rate: a bad rollout of settings cannot kill a node's every pod at once. Dry
run logs and counts what would be evicted without calling the API.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from oomguard.monitor.actions.cgroup_kill import KillMethod, kill_cgroup
from oomguard.monitor.actions.outcome import Outcome as Outcome  # its home before outcome.py
from oomguard.monitor.decision.candidate import Candidate
from oomguard.monitor.decision.rate_limit import TokenBucket
from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupError, CgroupGone
from oomguard.monitor.kube.backoff import Backoff
from oomguard.monitor.kube.pod_candidates import PodInfo
from oomguard.monitor.kube.pod_ref import PodRef
from oomguard.wire.sizes import format_size

log = logging.getLogger(__name__)

# Longer than the eviction webhook's timeoutSeconds (chart default 5 s, at most 30): with
# failurePolicy Ignore the apiserver lets an eviction through after the webhook times out, so
# an agent giving up at the same moment would count an eviction that happened as failed and
# act again. The chart passes `--eviction-timeout` as timeoutSeconds + 10.
EVICTION_REQUEST_TIMEOUT = 15.0

TOO_MANY_REQUESTS = 429
NOT_FOUND = 404


class ApiUnreachableError(Exception):
    """The API server could not be reached at all (connection refused, timeout, DNS)."""


class ApiThrottledError(Exception):
    """429 from API Priority and Fairness: the server is busy, not a disruption budget."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"API server throttling: retry after {retry_after:g}s")
        self.retry_after = retry_after


PDB_MESSAGE = "disruption budget"
PDB_CAUSE = "DisruptionBudget"


def eviction_429(body: str, headers: Mapping[str, str]) -> float | None:
    """What a 429 on an eviction means: None for a PodDisruptionBudget block (the status
    names a ``DisruptionBudget`` cause, or its message the pod's disruption budget), else
    the seconds to wait (``Retry-After``, 1 s when absent): API Priority and Fairness."""
    if PDB_CAUSE in body or PDB_MESSAGE in body.lower():
        return None
    retry = {k.lower(): v for k, v in headers.items()}.get("retry-after", "1")
    try:
        return max(0.0, float(retry))
    except ValueError:
        return 1.0


FREEING = frozenset({Outcome.EVICTED, Outcome.GONE, Outcome.KILLED})


@dataclass(frozen=True)
class PodVictim:
    candidate: Candidate
    pod: PodInfo | None  # None: a pod known from its cgroup alone (kill only, no Event)
    cgroup: Path | None  # absolute path of the pod cgroup, None when it was not found

    @property
    def ref(self) -> PodRef | None:
        """The pod as the API names it; None without a pod object."""
        if self.pod is None:
            return None
        return PodRef(self.pod.namespace, self.pod.name, self.pod.uid)

    @property
    def label(self) -> str:
        """namespace/name, or the candidate's name (its cgroup) without a pod object."""
        return self.pod.key if self.pod is not None else self.candidate.name

    @property
    def qos_text(self) -> str:
        return self.pod.qos.value if self.pod is not None else "QoS unknown"


@dataclass(frozen=True)
class ActionResult:
    victim: PodVictim
    outcome: Outcome
    detail: str = ""


@dataclass(frozen=True)
class Situation:
    """What the Event message tells the pod's owner: where memory stood and why this pod."""

    node_name: str
    usage_bytes: int
    limit_bytes: int
    trigger: str
    order_note: str = "newest unprotected pod first"
    protected_bytes: int = 0  # what protected pods hold: they stay while this one goes

    def message(self, victim: PodVictim, verb: str) -> str:
        protected = (
            f"; protected pods hold {format_size(self.protected_bytes)} and were passed over"
            if self.protected_bytes > 0
            else ""
        )
        return (
            f"{verb} by oomguard on node {self.node_name}: pods use "
            f"{format_size(self.usage_bytes)} of the {format_size(self.limit_bytes)} limit "
            f"({self.trigger}); this pod holds {format_size(victim.candidate.memory_bytes)} "
            f"({victim.qos_text}) and was chosen as the {self.order_note}{protected}"
        )


class EvictionApi(Protocol):
    def evict(
        self, namespace: str, name: str, grace_period_seconds: int, uid: str | None = None
    ) -> int:
        """POST pods/{name}/eviction, only for the pod with ``uid`` when given; the HTTP
        status, or ApiUnreachableError."""
        ...


class EventSink(Protocol):
    def post(
        self, pod: PodRef, message: str, reason: str = ..., event_type: str = ..., action: str = ...
    ) -> bool: ...


class KubernetesEvictionApi:
    """EvictionApi over ``CoreV1Api.create_namespaced_pod_eviction``."""

    def __init__(self, core_api: Any, request_timeout: float = EVICTION_REQUEST_TIMEOUT) -> None:
        self._core = core_api
        self._timeout = request_timeout

    def evict(
        self, namespace: str, name: str, grace_period_seconds: int, uid: str | None = None
    ) -> int:
        """``uid`` goes in ``deleteOptions.preconditions``: a same-name pod that replaced the
        one chosen (a StatefulSet's next pod, on any node) is never hit (409 instead), and
        the eviction webhook sees which pod is meant."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        delete_options: dict[str, Any] = {"gracePeriodSeconds": grace_period_seconds}
        if uid is not None:
            delete_options["preconditions"] = {"uid": uid}
        body = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
            "deleteOptions": delete_options,
        }
        try:
            self._core.create_namespaced_pod_eviction(
                name, namespace, body, _request_timeout=self._timeout
            )
        except ApiException as exc:
            if exc.status == 0 or exc.status is None:
                raise ApiUnreachableError(str(exc)) from exc
            if exc.status == TOO_MANY_REQUESTS:
                text = exc.body.decode() if isinstance(exc.body, bytes) else str(exc.body or "")
                retry_after = eviction_429(text, dict(exc.headers or {}))
                if retry_after is not None:
                    raise ApiThrottledError(retry_after) from exc
            return int(exc.status)
        except (HTTPError, OSError) as exc:
            raise ApiUnreachableError(str(exc)) from exc
        return 201


class PodEvictor:
    def __init__(
        self,
        api: EvictionApi,
        events: EventSink | None,
        rate: TokenBucket,
        *,
        grace_period_seconds: int = 10,
        dry_run: bool = False,
        max_attempts: int = 3,
        retry_backoff: Callable[[], Backoff] = lambda: Backoff(initial=0.2, maximum=2.0),
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        kill_cgroup: Callable[[Cgroup], KillMethod] = kill_cgroup,
        kill_rate: TokenBucket | None = None,
    ) -> None:
        """``kill_rate``: at most so many cgroup kills per minute on this node (None: no
        bound); a kill held back is RATE_LIMITED and the pod stays chosen."""
        self.api = api
        self.kill_rate = kill_rate
        self._kill_cgroup = kill_cgroup
        self.events = events
        self.rate = rate
        self.grace_period_seconds = grace_period_seconds
        self.dry_run = dry_run
        self.max_attempts = max_attempts
        self._retry_backoff = retry_backoff
        self._clock = clock
        self._sleep = sleep
        self.counts: dict[Outcome, int] = dict.fromkeys(Outcome, 0)
        self.throttled_until = 0.0  # the API server's Retry-After, on our clock
        self.killed_without_event = 0  # kills of pods known from their cgroup alone

    def evict_until_covered(
        self, ordered: Sequence[PodVictim], amount: int, situation: Situation
    ) -> list[ActionResult]:
        """Walk ``ordered`` (newest first) until the freed memory covers ``amount``.

        Blocked and failed pods are passed over for the next one; once the API is found
        unreachable, the remaining pods needed to cover the amount are returned as
        UNREACHABLE without more calls (the caller kills them after the wait).
        """
        results: list[ActionResult] = []
        covered = 0
        unreachable = False
        for victim in ordered:
            if covered >= amount:
                break
            if unreachable:
                result = ActionResult(victim, Outcome.UNREACHABLE, "API server unreachable")
            elif self.dry_run:
                result = ActionResult(victim, Outcome.DRY_RUN, "dry run: not evicted")
            elif victim.pod is None:  # nothing to evict: chosen, the kill fallback's to act on
                detail = "no pod object (API server unreachable): only cgroup.kill can free it"
                result = ActionResult(victim, Outcome.UNREACHABLE, detail)
            elif self._clock() < self.throttled_until:
                wait = self.throttled_until - self._clock()
                detail = f"API server throttling: retry in {wait:.1f}s"
                self._record(ActionResult(victim, Outcome.RATE_LIMITED, detail))
                break
            elif self.rate.available(self._clock()) < 1:
                wait = self.rate.seconds_until_next(self._clock())
                result = ActionResult(victim, Outcome.RATE_LIMITED, f"next eviction in {wait:.1f}s")
                self._record(result)
                break
            else:
                result = self._evict(victim, situation)
                unreachable = result.outcome is Outcome.UNREACHABLE
                if result.outcome is Outcome.RATE_LIMITED:  # throttled by the API server
                    self._record(result)
                    break
            self._record(result)
            results.append(result)
            if result.outcome in FREEING or result.outcome in (
                Outcome.DRY_RUN,
                Outcome.UNREACHABLE,
            ):
                covered += victim.candidate.memory_bytes
        return results

    def kill(self, victim: PodVictim, situation: Situation) -> ActionResult:
        """The last resort: ``cgroup.kill`` on the pod cgroup (all its processes, at once),
        or SIGKILL to each of them on kernels without it (``cgroup_kill``)."""
        if self.dry_run:
            result = ActionResult(victim, Outcome.DRY_RUN, "dry run: cgroup not killed")
        elif victim.cgroup is None:
            result = ActionResult(victim, Outcome.GONE, "no cgroup left to kill")
        elif self.kill_rate is not None and not self.kill_rate.try_take(self._clock()):
            wait = self.kill_rate.seconds_until_next(self._clock())
            result = ActionResult(victim, Outcome.RATE_LIMITED, f"next kill in {wait:.1f}s")
        else:
            try:
                method = self._kill_cgroup(Cgroup(victim.cgroup))
                result = ActionResult(victim, Outcome.KILLED, f"{victim.cgroup} ({method.value})")
            except CgroupGone:
                result = ActionResult(victim, Outcome.GONE, "cgroup already removed")
            except CgroupError as exc:
                result = ActionResult(victim, Outcome.FAILED, str(exc))
        self._record(result)
        ref = victim.ref
        if result.outcome is Outcome.KILLED and ref is None:
            self.killed_without_event += 1
            log.warning(
                "%s: %s; no Event posted: no pod object to post it on",
                victim.label,
                situation.message(victim, "Killed (cgroup.kill)"),
            )
        elif result.outcome is Outcome.KILLED and ref is not None and self.events is not None:
            self.events.post(ref, situation.message(victim, "Killed (cgroup.kill)"), action="Kill")
        return result

    def _evict(self, victim: PodVictim, situation: Situation) -> ActionResult:
        ref = victim.ref
        if ref is None:  # evict_until_covered never asks for it
            raise ValueError(f"{victim.label}: no pod object to evict")
        backoff = self._retry_backoff()
        status = 0
        for attempt in range(1, self.max_attempts + 1):
            try:
                status = self.api.evict(
                    ref.namespace, ref.name, self.grace_period_seconds, uid=ref.uid
                )
            except ApiUnreachableError as exc:
                return ActionResult(victim, Outcome.UNREACHABLE, str(exc))
            except ApiThrottledError as exc:
                self.throttled_until = self._clock() + exc.retry_after
                return ActionResult(victim, Outcome.RATE_LIMITED, str(exc))
            if status in (200, 201):
                self.rate.try_take(self._clock())
                if self.events is not None:
                    self.events.post(ref, situation.message(victim, "Evicted"))
                return ActionResult(victim, Outcome.EVICTED, f"grace {self.grace_period_seconds}s")
            if status == NOT_FOUND:
                return ActionResult(victim, Outcome.GONE, "pod not found")
            if status == TOO_MANY_REQUESTS:
                return ActionResult(victim, Outcome.BLOCKED, "a PodDisruptionBudget forbids it")
            if attempt < self.max_attempts:
                self._sleep(backoff.next_delay())
        return ActionResult(
            victim, Outcome.FAILED, f"HTTP {status} after {self.max_attempts} tries"
        )

    def _record(self, result: ActionResult) -> None:
        self.counts[result.outcome] += 1
        log.info(
            "pod %s (%s, %s): %s %s",
            result.victim.label,
            result.victim.candidate.id,
            format_size(result.victim.candidate.memory_bytes),
            result.outcome.value,
            result.detail,
        )
