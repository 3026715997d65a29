import pytest

from oomguard.monitor.actions.pod_evictor import (
    ApiUnreachableError,
    Outcome,
    PodEvictor,
    PodVictim,
    Situation,
)
from oomguard.monitor.decision.candidate import Candidate
from oomguard.monitor.decision.rate_limit import TokenBucket
from oomguard.monitor.kube.backoff import Backoff
from oomguard.monitor.kube.pod_candidates import PodInfo
from oomguard.monitor.kube.pod_cgroups import QosClass

MIB = 2**20
SITUATION = Situation("node-a", 900 * MIB, 800 * MIB, "memory.events high rose")


def victim(name, memory=100 * MIB, cgroup=None):
    pod = PodInfo(
        uid=f"uid-{name}",
        namespace="ns",
        name=name,
        node_name="node-a",
        qos=QosClass.BURSTABLE,
        started_at=1.0,
        has_start_time=True,
    )
    return PodVictim(Candidate(pod.uid, pod.key, 1.0, memory), pod, cgroup)


class FakeApi:
    def __init__(self, statuses):
        self.statuses = statuses  # name -> list of statuses (or exceptions), consumed in order
        self.calls = []
        self.uids = []

    def evict(self, namespace, name, grace_period_seconds, uid=None):
        self.calls.append((namespace, name, grace_period_seconds))
        self.uids.append(uid)
        answer = self.statuses.get(name, [201]).pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


class Events:
    def __init__(self):
        self.posted = []

    def post(self, pod, message, reason="OOMGuardEviction", event_type="Warning", action="Evict"):
        self.posted.append((pod.name, message, action))
        return True


def evictor(api, events=None, per_minute=10, **kwargs):
    clock = [0.0]
    sleeps = []
    e = PodEvictor(
        api,
        events,
        TokenBucket(per_minute=per_minute, burst=per_minute, now=0.0),
        grace_period_seconds=7,
        retry_backoff=lambda: Backoff(initial=0.1, maximum=1.0),
        clock=lambda: clock[0],
        sleep=sleeps.append,
        **kwargs,
    )
    return e, sleeps


def outcomes(results):
    return [(r.victim.pod.name, r.outcome) for r in results]


def test_evicts_newest_until_covered_and_posts_events():
    api, events = FakeApi({}), Events()
    e, _ = evictor(api, events)
    results = e.evict_until_covered([victim("a"), victim("b"), victim("c")], 150 * MIB, SITUATION)
    assert outcomes(results) == [("a", Outcome.EVICTED), ("b", Outcome.EVICTED)]
    assert api.calls == [("ns", "a", 7), ("ns", "b", 7)]
    assert [p[0] for p in events.posted] == ["a", "b"]
    message = events.posted[0][1]
    assert "node-a" in message and "900.0Mi" in message and "800.0Mi" in message
    assert "100.0Mi" in message and "newest" in message


def test_pdb_blocked_pod_is_passed_over_for_the_next():
    api, events = FakeApi({"a": [429]}), Events()
    e, _ = evictor(api, events)
    results = e.evict_until_covered([victim("a"), victim("b"), victim("c")], 100 * MIB, SITUATION)
    assert outcomes(results) == [("a", Outcome.BLOCKED), ("b", Outcome.EVICTED)]
    assert [p[0] for p in events.posted] == ["b"]
    assert e.rate.available(0.0) == 9  # the blocked attempt cost no token


def test_not_found_counts_as_done():
    e, _ = evictor(FakeApi({"a": [404]}))
    assert outcomes(e.evict_until_covered([victim("a"), victim("b")], 50 * MIB, SITUATION)) == [
        ("a", Outcome.GONE)
    ]


def test_other_errors_are_retried_with_backoff():
    api = FakeApi({"a": [500, 503, 201]})
    e, sleeps = evictor(api)
    assert outcomes(e.evict_until_covered([victim("a")], 1, SITUATION)) == [("a", Outcome.EVICTED)]
    assert sleeps == [0.1, 0.2]


def test_persistent_errors_fail_and_move_on():
    api = FakeApi({"a": [500, 500, 500]})
    e, _ = evictor(api)
    results = e.evict_until_covered([victim("a"), victim("b")], 1, SITUATION)
    assert outcomes(results) == [("a", Outcome.FAILED), ("b", Outcome.EVICTED)]
    assert "HTTP 500" in results[0].detail


def test_unreachable_api_marks_the_needed_pods_without_more_calls():
    api = FakeApi({"a": [ApiUnreachableError("refused")]})
    e, _ = evictor(api)
    results = e.evict_until_covered([victim("a"), victim("b"), victim("c")], 150 * MIB, SITUATION)
    assert outcomes(results) == [("a", Outcome.UNREACHABLE), ("b", Outcome.UNREACHABLE)]
    assert len(api.calls) == 1


def test_rate_limit_stops_the_round():
    api = FakeApi({})
    e, _ = evictor(api, per_minute=2)
    results = e.evict_until_covered([victim("a"), victim("b"), victim("c")], 300 * MIB, SITUATION)
    assert outcomes(results) == [("a", Outcome.EVICTED), ("b", Outcome.EVICTED)]
    assert e.counts[Outcome.RATE_LIMITED] == 1
    assert len(api.calls) == 2


def test_dry_run_calls_nothing():
    api, events = FakeApi({}), Events()
    e, _ = evictor(api, events, dry_run=True)
    results = e.evict_until_covered([victim("a"), victim("b")], 150 * MIB, SITUATION)
    assert outcomes(results) == [("a", Outcome.DRY_RUN), ("b", Outcome.DRY_RUN)]
    assert api.calls == [] and events.posted == []
    assert e.kill(victim("a", cgroup="/nonexistent"), SITUATION).outcome is Outcome.DRY_RUN


def test_kill_writes_cgroup_kill(tmp_path):
    cg = tmp_path / "pod"
    cg.mkdir()
    (cg / "cgroup.kill").write_text("")
    events = Events()
    e, _ = evictor(FakeApi({}), events)
    result = e.kill(victim("a", cgroup=cg), SITUATION)
    assert result.outcome is Outcome.KILLED
    assert (cg / "cgroup.kill").read_text() == "1"
    assert events.posted[0][2] == "Kill" and "cgroup.kill" in events.posted[0][1]


@pytest.mark.parametrize("cgroup", [None, "/nonexistent/pod"])
def test_kill_of_missing_cgroup_is_gone(cgroup):
    e, _ = evictor(FakeApi({}))
    assert e.kill(victim("a", cgroup=cgroup), SITUATION).outcome is Outcome.GONE


def test_kills_per_minute_are_bounded(tmp_path):
    cgroups = []
    for name in "abc":
        cg = tmp_path / name
        cg.mkdir()
        (cg / "cgroup.kill").write_text("")
        cgroups.append(cg)
    clock = [0.0]
    e = PodEvictor(
        FakeApi({}),
        None,
        TokenBucket(per_minute=10, burst=10, now=0.0),
        clock=lambda: clock[0],
        kill_rate=TokenBucket(per_minute=2, burst=2, now=0.0),
    )
    outcomes_ = [
        e.kill(victim(n, cgroup=cg), SITUATION).outcome
        for n, cg in zip("abc", cgroups, strict=True)
    ]
    assert outcomes_ == [Outcome.KILLED, Outcome.KILLED, Outcome.RATE_LIMITED]
    assert (cgroups[2] / "cgroup.kill").read_text() == ""
    clock[0] = 30.0  # one token back
    assert e.kill(victim("c", cgroup=cgroups[2]), SITUATION).outcome is Outcome.KILLED


def test_each_eviction_names_the_chosen_pods_uid():
    """Item 11 of "do no harm": a same-name pod that replaced the chosen one is never hit."""
    api = FakeApi({})
    e, _ = evictor(api)
    e.evict_until_covered([victim("a"), victim("b")], 150 * MIB, SITUATION)
    assert api.uids == ["uid-a", "uid-b"]
