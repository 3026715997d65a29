"""NodeAgent on a plain-file imitation of a kubepods tree (no kernel): the wiring of measure,
decide, evict, fall back and memory.high handling. The real kernel runs in the kernel tests."""

import threading
import time
from pathlib import PurePosixPath

import pytest
from monitor_fakes import MI, Api, Clock, Pods, fake_evictor, pod, wait_for, write_cgroup

from oomguard.monitor.actions.pod_evictor import ApiUnreachableError
from oomguard.monitor.decision.newest_first import Outcome as D
from oomguard.monitor.kernel.cgroupfs import walk_cgroups
from oomguard.monitor.kube.pod_cgroups import (
    CgroupDriver,
    KubepodsLocation,
    pod_cgroup_path,
)
from oomguard.monitor.modes.node_agent import AgentOptions, NodeAgent
from oomguard.monitor.settings import EvictionSettings, NodeSettings
from oomguard.monitor.triggers.stop_signal import StopSignal
from oomguard.monitor.triggers.trigger import Trigger, TriggerKind

LOC = KubepodsLocation(CgroupDriver.SYSTEMD, PurePosixPath("kubepods.slice"))


@pytest.fixture
def tree(tmp_path):
    write_cgroup(tmp_path / "kubepods.slice", 0, maximum=str(1000 * MI), kill_file=True)
    return tmp_path


def make_agent(tree, pods, memory, api, eviction=None, usage=None, dry_run=False):
    for p in pods:
        write_cgroup(tree / pod_cgroup_path(p.uid, p.qos, LOC), memory[p.name], kill_file=True)
    total = usage if usage is not None else sum(memory.values())
    (tree / "kubepods.slice" / "memory.current").write_text(f"{total}\n")
    settings = NodeSettings(
        node_name="node-a",
        node_memory_bytes=1100 * MI,
        reserve_bytes=100 * MI,
        eviction=eviction or EvictionSettings(buffer_bytes=0, kill_fallback_wait_seconds=10),
        dry_run=dry_run,
    )
    clock = Clock()
    evictor = fake_evictor(api, clock=clock, dry_run=dry_run)
    options = AgentOptions(cgroup_root=tree, kubepods=LOC, margin_bytes=64 * MI)
    return NodeAgent(options, settings, Pods(pods), evictor, clock=clock), clock


def test_walk_finds_pods_and_containers(tree):
    p = pod("a", 1)
    write_cgroup(
        tree / pod_cgroup_path(p.uid, p.qos, LOC) / "cri-containerd-abc.scope", 0, kill_file=True
    )
    dirs = walk_cgroups(tree, PurePosixPath("kubepods.slice"), depth=3)
    assert pod_cgroup_path(p.uid, p.qos, LOC) / "cri-containerd-abc.scope" in dirs


def test_memory_high_capped_set_reasserted_and_restored(tree):
    agent, _ = make_agent(tree, [], {}, Api())
    high_file = tree / "kubepods.slice" / "memory.high"
    agent.assert_memory_high()
    # memory - reserve = 1000Mi, but memory.max 1000Mi - margin 64Mi is lower
    assert high_file.read_text() == f"{936 * MI}\n"
    high_file.write_text("max\n")
    agent.step()
    assert high_file.read_text() == f"{936 * MI}\n"
    assert agent.counters["memory_high_reasserted"] == 1
    agent.restore_memory_high()
    assert high_file.read_text() == "max\n"


def test_memory_high_untouched_on_old_kernels(tree):
    agent, _ = make_agent(tree, [], {}, Api())
    agent.options = AgentOptions(tree, LOC, set_memory_high=False, margin_bytes=64 * MI)
    agent.assert_memory_high()
    assert (tree / "kubepods.slice" / "memory.high").read_text() == "max\n"
    assert agent.limit_bytes() == 936 * MI


def test_evicts_newest_unprotected_and_skips_pdb_blocked(tree):
    pods = [
        pod("old", 1),
        pod("mid", 2),
        pod("new", 3),
        pod("newest", 4, annotations={"oomguard.io/protect": "true"}),
    ]
    memory = {"old": 500 * MI, "mid": 300 * MI, "new": 200 * MI, "newest": 100 * MI}
    api = Api({"new": 429})
    eviction = EvictionSettings(
        buffer_bytes=0, kill_fallback_wait_seconds=10, protect_annotation_namespaces=("apps",)
    )
    agent, _ = make_agent(tree, pods, memory, api, eviction)
    decision = agent.step("event")
    assert decision.outcome is D.VICTIMS
    # target = 936Mi * 95% = 889Mi; usage 1100Mi: 211Mi to free -> "new" (blocked) then "mid"
    assert api.calls == ["new", "mid"]
    assert agent.counters == agent.counters | {"evicted": 1, "blocked": 1}
    # while "mid" is still there, no new decision
    api.calls.clear()
    assert agent.step().outcome is D.WAITING
    assert api.calls == []


class Events:
    def __init__(self):
        self.messages = []

    def post(self, pod, message, reason="", event_type="", action=""):
        self.messages.append((pod.name, message))
        return True


def test_protected_memory_is_said_in_the_event_and_status(tree):
    pods = [pod("old", 1), pod("new", 2, annotations={"oomguard.io/protect": "true"})]
    memory = {"old": 700 * MI, "new": 400 * MI}
    eviction = EvictionSettings(
        buffer_bytes=0, kill_fallback_wait_seconds=10, protect_annotation_namespaces=("apps",)
    )
    agent, _ = make_agent(tree, pods, memory, Api(), eviction)
    agent.evictor.events = events = Events()
    agent.step("event")
    # the old pod goes to make room while the newer, protected one stays: say so
    [(name, message)] = events.messages
    assert name == "old"
    assert "protected pods hold 400.0Mi" in message
    assert agent.status()["protected_memory"] == 400 * MI
    # and in the CRD's lastDecision
    assert agent.last_decision["protectedMemoryBytes"] == 400 * MI


def test_kill_fallback_when_everything_is_blocked(tree):
    pods = [pod("a", 1), pod("b", 2)]
    memory = {"a": 600 * MI, "b": 500 * MI}
    agent, clock = make_agent(tree, pods, memory, Api({"a": 429, "b": 429}))
    agent.step("event")
    assert agent.counters["blocked"] == 2
    kill_b = tree / pod_cgroup_path(pods[1].uid, pods[1].qos, LOC) / "cgroup.kill"
    clock.now += 5
    agent.step()
    assert kill_b.read_text() == ""  # not before the wait
    clock.now += 6
    agent.step()
    assert kill_b.read_text() == "1"  # the newest blocked pod
    kill_a = tree / pod_cgroup_path(pods[0].uid, pods[0].qos, LOC) / "cgroup.kill"
    assert kill_a.read_text() == ""
    assert agent.counters["killed"] == 1


def test_kill_fallback_when_the_api_is_unreachable(tree):
    pods = [pod("a", 1), pod("b", 2)]
    memory = {"a": 600 * MI, "b": 500 * MI}
    api = Api({"b": ApiUnreachableError("refused")})
    agent, clock = make_agent(tree, pods, memory, api)
    agent.pods.connected = False
    agent.step("event")
    assert api.calls == ["b"]
    clock.now += 11
    agent.step()
    assert (
        tree / pod_cgroup_path(pods[1].uid, pods[1].qos, LOC) / "cgroup.kill"
    ).read_text() == "1"


def test_stuck_victims_are_killed_before_anyone_new_is_chosen(tree):
    pods = [pod("a", 1), pod("b", 2), pod("c", 3)]
    memory = {"a": 400 * MI, "b": 400 * MI, "c": 300 * MI}
    api = Api()
    eviction = EvictionSettings(
        buffer_bytes=0, grace_period_seconds=5, kill_fallback_wait_seconds=10
    )
    agent, clock = make_agent(tree, pods, memory, api, eviction)
    agent.step("event")
    assert api.calls == ["c"]  # 211Mi to free: the newest covers it
    # "c" was evicted but never goes away; past the in-flight timeout (grace + wait)
    clock.now += 16
    agent.step("event")
    kill = {p.name: tree / pod_cgroup_path(p.uid, p.qos, LOC) / "cgroup.kill" for p in pods}
    assert kill["c"].read_text() == "1"  # the stuck victim is killed first
    assert kill["a"].read_text() == kill["b"].read_text() == ""
    assert api.calls == ["c"]  # and nobody new was chosen
    assert agent.counters["killed"] == 1


def test_kill_fallback_can_be_disabled(tree):
    pods = [pod("a", 1)]
    eviction = EvictionSettings(buffer_bytes=0, kill_fallback=False, kill_fallback_wait_seconds=1)
    agent, clock = make_agent(tree, pods, {"a": 1100 * MI}, Api({"a": 429}), eviction)
    agent.step("event")
    clock.now += 100
    agent.step()
    assert agent.counters["killed"] == 0


def test_dry_run_acts_on_nothing(tree):
    pods = [pod("a", 1), pod("b", 2)]
    api = Api()
    agent, _ = make_agent(tree, pods, {"a": 600 * MI, "b": 500 * MI}, api, dry_run=True)
    agent.step("event")
    agent.step("event")
    assert api.calls == [] and agent.counters["dry_run"] == 2


def test_dry_run_leaves_memory_high_alone_and_says_what_it_would_do(tree):
    pods = [pod("a", 1), pod("b", 2)]
    api = Api()
    agent, _ = make_agent(tree, pods, {"a": 600 * MI, "b": 500 * MI}, api, dry_run=True)
    high_file = tree / "kubepods.slice" / "memory.high"
    agent.assert_memory_high()
    agent.step("event")
    assert high_file.read_text() == "max\n"  # the node is untouched
    status = agent.status()
    assert status["memory_high_set"] is False
    assert status["memory_high"] == 936 * MI  # what it would set
    assert status["last_decision"]["action"] == "DryRun"
    assert status["last_decision"]["victims"] == ["apps/b"]  # whom it would evict
    assert api.calls == []


def test_status_lists_order_and_protected(tree):
    pods = [pod("a", 1), pod("b", 2, owner_kinds=("DaemonSet",)), pod("c", 3)]
    agent, _ = make_agent(tree, pods, {"a": 10 * MI, "b": 10 * MI, "c": 10 * MI}, Api())
    agent.step()
    status = agent.status()
    assert [e["pod"] for e in status["eviction_order"]] == ["apps/c", "apps/a"]
    assert status["protected"][0]["pod"] == "apps/b"
    assert "DaemonSet" in status["protected"][0]["why"]
    assert status["usage"] == 30 * MI and status["memory_high"] == 936 * MI


class TriggersAt:
    """An event monitor sending one trigger at each of ``delays`` (seconds after start)."""

    name = "event"

    def __init__(self, delays):
        self.delays = delays
        self.sent: list[float] = []

    def run(self, sink, stop):
        started = time.monotonic()
        for delay in self.delays:
            if stop.wait(max(0.0, started + delay - time.monotonic())):
                return
            self.sent.append(time.monotonic())
            sink(Trigger(TriggerKind.EVENT, self.sent[-1]))
        stop.wait()


def run_spaced(agent, monitor, min_step_interval, until):
    """Run ``agent`` with ``monitor`` and a step spacing until ``until(measured)`` holds (at
    most 90 s); the times it measured. Spacings in these tests are long (tens of seconds),
    so a held trigger shows as a gap no loaded machine produces by itself."""
    options = AgentOptions(
        cgroup_root=agent.options.cgroup_root,
        kubepods=LOC,
        margin_bytes=64 * MI,
        tick_seconds=3600,
        min_step_interval=min_step_interval,
    )
    agent = NodeAgent(options, agent.settings, agent.pods, agent.evictor, monitors=[monitor])
    measured: list[float] = []
    original = agent.measurer.measure
    agent.measurer.measure = lambda *look: measured.append(time.monotonic()) or original(*look)
    stop = StopSignal()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    thread.start()
    wait_for(lambda: until(measured), timeout=90)
    stop.set()
    thread.join(30)
    assert not thread.is_alive()
    return measured


def test_a_burst_while_an_evicted_pod_is_still_there_is_at_most_two_measurements(tree):
    """memory.events rising 60 times in 0.3 s: one step at once, one for the rest."""
    api = Api()
    pods = [pod("a", 1.0), pod("b", 2.0)]
    agent, _ = make_agent(tree, pods, {"a": 100 * MI, "b": 100 * MI}, api, usage=1050 * MI)
    burst = TriggersAt([i * 0.005 for i in range(60)])
    measured = run_spaced(agent, burst, 60.0, lambda m: len(burst.sent) == 60 and m and api.calls)
    assert len(burst.sent) == 60
    assert api.calls == ["b", "a"]  # one decision; the pods stay (no kubelet): an episode
    assert 1 <= len(measured) <= 2
    assert measured[0] - burst.sent[0] < 30  # the first trigger was not held (60 s spacing)


def test_after_a_step_with_nothing_to_free_the_next_trigger_is_not_held(tree):
    """A breach right after a calm step is measured at once, not after the spacing."""
    agent, _ = make_agent(tree, [pod("a", 1.0)], {"a": 100 * MI}, Api())
    triggers = TriggersAt([0.0, 0.3])
    measured = run_spaced(agent, triggers, 60.0, lambda m: len(m) == 2)
    assert len(measured) == 2
    assert measured[1] - triggers.sent[1] < 30  # held, it would have waited about 60 s


# ------------------------------------------------------------------ MemoryPressure


def test_memory_pressure_begins_with_an_eviction_and_ends_a_cooldown_after_the_episode(tree):
    import shutil

    from oomguard.monitor.decision.memory_pressure import PressureReason as R

    pods = [pod("old", 1), pod("new", 2)]
    memory = {"old": 600 * MI, "new": 500 * MI}
    eviction = EvictionSettings(
        buffer_bytes=0, kill_fallback_wait_seconds=10, pressure_cooldown_seconds=30
    )
    agent, clock = make_agent(tree, pods, memory, Api(), eviction)
    assert agent.pressure.reason is R.NO_EVICTIONS
    agent.step("event")
    assert agent.counters["evicted"] == 1
    assert (agent.pressure.reason, agent.pressure.freed) == (R.EVICTING, 1)
    clock.now += 5
    agent.step()  # "new" is still on the node: the episode lasts
    assert agent.pressure.reason is R.EVICTING
    # "new" is gone and usage is under the target: the episode is over, the cooldown runs
    shutil.rmtree(tree / pod_cgroup_path(pods[1].uid, pods[1].qos, LOC))
    del agent.pods.pods[pods[1].uid]
    (tree / "kubepods.slice" / "memory.current").write_text(f"{600 * MI}\n")
    clock.now += 1
    agent.step()
    assert agent.pressure.reason is R.COOLING_DOWN
    clock.now += 29.9
    agent.step()
    assert agent.pressure.under_pressure
    clock.now += 0.1
    agent.step()
    assert agent.pressure.reason is R.NO_EVICTIONS


def test_no_memory_pressure_in_a_dry_run(tree):
    pods = [pod("a", 1), pod("b", 2)]
    memory = {"a": 600 * MI, "b": 500 * MI}
    dry, _ = make_agent(tree, pods, memory, Api(), dry_run=True)
    dry.step("event")
    assert dry.counters["dry_run"] >= 1 and not dry.pressure.under_pressure


def test_an_eviction_the_api_refuses_still_puts_the_node_under_pressure(tree):
    """The agent set out to free memory by force: the node is under pressure whether or not
    a PodDisruptionBudget let it, and new pods should not be scheduled into it."""
    pods = [pod("a", 1), pod("b", 2)]
    memory = {"a": 600 * MI, "b": 500 * MI}
    blocked, clock = make_agent(tree, pods, memory, Api({"a": 429, "b": 429}))
    blocked.step("event")
    assert blocked.counters["blocked"] == 2
    assert (blocked.pressure.under_pressure, blocked.pressure.freed) == (True, 0)
    # ... and the last resort's kill is counted as freed
    clock.now += 11
    blocked.step()
    assert (blocked.counters["killed"], blocked.pressure.freed) == (1, 1)


def test_memory_pressure_is_reported_before_the_first_eviction_goes_out(tree):
    """The operator's taint follows the reported condition, and an evicted pod's replacement
    is created the moment its eviction succeeds: the report must not wait for the answers."""
    pods = [pod("old", 1), pod("new", 2)]
    memory = {"old": 600 * MI, "new": 500 * MI}
    seen = []

    class WatchedApi(Api):
        def evict(self, namespace, name, grace, uid=None):
            seen.append((agent.pressure.under_pressure, agent.changes.reset()))
            return super().evict(namespace, name, grace, uid)

    agent, _ = make_agent(tree, pods, memory, WatchedApi())
    agent.changes.reset()
    agent.step("event")
    assert seen == [(True, True)], "pressure (and the reporter's wake-up) before the eviction"
