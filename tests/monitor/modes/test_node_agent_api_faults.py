"""The node agent when the Eviction API answers with errors: failed pods back off per pod and
count toward the kill fallback like PDB-blocked ones; the API server's own throttling (429
with Retry-After, no disruption budget) never leads to a kill; ``/status`` answers while
evictions are under way."""

import threading

import pytest
from monitor_fakes import MI, Api, pod, write_cgroup
from test_node_agent import LOC, make_agent

from oomguard.monitor.actions.pod_evictor import ApiThrottledError, eviction_429
from oomguard.monitor.kube.pod_cgroups import pod_cgroup_path


@pytest.fixture
def tree(tmp_path):
    write_cgroup(tmp_path / "kubepods.slice", 0, maximum=str(1000 * MI), kill_file=True)
    return tmp_path


def kill_file(tree, p):
    return tree / pod_cgroup_path(p.uid, p.qos, LOC) / "cgroup.kill"


@pytest.mark.parametrize("status", [403, 409, 500, 503, 504])
def test_failed_pods_back_off_and_count_toward_the_kill_fallback(tree, status):
    pods = [pod("a", 1), pod("b", 2)]
    api = Api({"a": status, "b": status})
    agent, clock = make_agent(tree, pods, {"a": 600 * MI, "b": 500 * MI}, api)
    agent.step("event")
    assert set(api.calls) == {"a", "b"}
    api.calls.clear()
    clock.now += 1
    agent.step("event")
    assert api.calls == []  # backed off per pod: not retried on every step
    clock.now += 10  # past killFallback.waitSeconds
    agent.step("event")
    assert kill_file(tree, pods[1]).read_text() == "1"  # the newest failed pod
    assert kill_file(tree, pods[0]).read_text() == ""
    assert agent.counters["killed"] == 1


def test_api_server_throttling_never_leads_to_a_kill(tree):
    pods = [pod("a", 1), pod("b", 2)]
    throttled = ApiThrottledError(5.0)
    api = Api({"a": throttled, "b": throttled})
    agent, clock = make_agent(tree, pods, {"a": 600 * MI, "b": 500 * MI}, api)
    agent.step("event")
    assert api.calls == ["b"]  # throttled: the round ends, nobody else is tried
    clock.now += 1
    agent.step("event")
    assert api.calls == ["b"]  # Retry-After (5 s) is honoured
    for _ in range(12):
        clock.now += 10
        agent.step("event")
    assert kill_file(tree, pods[0]).read_text() == kill_file(tree, pods[1]).read_text() == ""
    assert agent.counters["killed"] == 0 and agent.counters["blocked"] == 0
    assert agent.counters["rate_limited"] >= 1


def test_a_pdb_429_is_told_from_api_priority_and_fairness():
    pdb = (
        '{"kind":"Status","status":"Failure","message":"Cannot evict pod as it would violate '
        'the pod\'s disruption budget.","reason":"TooManyRequests","details":'
        '{"causes":[{"reason":"DisruptionBudget","message":"The disruption budget web needs 1 '
        'healthy pods and has 1 currently"}]},"code":429}'
    )
    apf = (
        '{"kind":"Status","status":"Failure","message":"Too many requests, please try '
        'again later.","reason":"TooManyRequests","code":429}'
    )
    assert eviction_429(pdb, {}) is None  # a PDB block
    assert eviction_429(apf, {"Retry-After": "3"}) == 3.0
    assert eviction_429("", {}) == 1.0  # no budget named: throttling, not a block


class BlockingApi(Api):
    """An Eviction API that fails with 503, each call held until the test releases it."""

    def __init__(self):
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def evict(self, namespace, name, grace, uid=None):
        self.calls.append(name)
        self.entered.set()
        assert self.release.wait(60)
        return 503


def test_status_answers_while_evictions_fail(tree):
    pods = [pod("a", 1), pod("b", 2)]
    api = BlockingApi()
    agent, _ = make_agent(tree, pods, {"a": 600 * MI, "b": 500 * MI}, api)
    stepping = threading.Thread(target=agent.step, args=("event",))
    stepping.start()
    try:
        assert api.entered.wait(60)
        status = agent.status()  # the step is inside an API call: status must not wait
        assert status["node"] == "node-a"
    finally:
        api.release.set()
        stepping.join(60)
    assert not stepping.is_alive()


def test_kills_are_rate_limited_and_a_held_kill_stays_chosen(tree):
    """Item 10 of "do no harm": cgroup kills have a bucket like evictions; a kill it holds
    back is not counted as done, so the pod is killed once a token is back."""
    from oomguard.monitor.decision.rate_limit import TokenBucket

    pods = [pod("a", 1), pod("b", 2)]
    api = Api({"a": 500, "b": 500})
    agent, clock = make_agent(tree, pods, {"a": 600 * MI, "b": 500 * MI}, api)
    agent.evictor.kill_rate = TokenBucket(per_minute=60, burst=1, now=clock.now)
    assert agent.evictor.kill_rate.try_take(clock.now)  # a kill just spent the node's budget
    agent.step("event")
    clock.now += 10  # past killFallback.waitSeconds, within the same second of the bucket
    agent.evictor.kill_rate.try_take(clock.now)
    agent.step("event")
    assert kill_file(tree, pods[1]).read_text() == ""  # held back
    assert agent.counters["killed"] == 0
    assert agent.counters["rate_limited"] >= 1
    clock.now += 1  # one token back
    agent.step("event")
    assert kill_file(tree, pods[1]).read_text() == "1"
    assert agent.counters["killed"] == 1
