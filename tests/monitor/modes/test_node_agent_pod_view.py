"""The node agent's blind spots in its pod view, on the fake tree: a pod cgroup without a pod
object asks the watch for a relist (bounded), and with no API the pod cgroups on disk are
kill-only candidates that keep the node protected."""

import os
import threading
import uuid
from pathlib import PurePosixPath

import pytest
from kubernetes.client import ApiClient, Configuration, CoreV1Api
from monitor_fakes import MI, Api, Clock, Pods, fake_evictor, pod, wait_for, write_cgroup
from prometheus_client import CollectorRegistry, generate_latest

from oomguard.monitor.actions.outcome import Outcome
from oomguard.monitor.decision.newest_first import Outcome as D
from oomguard.monitor.decision.rate_limit import TokenBucket
from oomguard.monitor.feedback.pod_view_collector import PodViewCollector
from oomguard.monitor.kube.pod_cgroups import (
    CgroupDriver,
    KubepodsLocation,
    QosClass,
    pod_cgroup_path,
)
from oomguard.monitor.kube.pod_view import (
    BLIND_AFTER_SECONDS,
    RELIST_MIN_INTERVAL,
    UNMATCHED_GRACE,
)
from oomguard.monitor.modes.node_agent import AgentOptions, NodeAgent
from oomguard.monitor.modes.node_runtime import build_agent
from oomguard.monitor.modes.status_command import render_table
from oomguard.monitor.settings import EvictionSettings, NodeSettings
from oomguard.monitor.triggers.stop_signal import StopSignal

LOC = KubepodsLocation(CgroupDriver.SYSTEMD, PurePosixPath("kubepods.slice"))
WAIT = 10  # kill-fallback wait
EPOCH = 1_700_000_000.0


@pytest.fixture
def tree(tmp_path):
    write_cgroup(tmp_path / "kubepods.slice", 0, maximum=str(1000 * MI), kill_file=True)
    return tmp_path


def pod_dir(tree, name, memory, qos=QosClass.BURSTABLE, made_at=EPOCH):
    """A pod cgroup on disk (no pod object), made at ``made_at`` (its directory's mtime)."""
    uid = str(uuid.uuid5(uuid.NAMESPACE_DNS, name))
    path = write_cgroup(tree / pod_cgroup_path(uid, qos, LOC), memory, kill_file=True)
    os.utime(path, (made_at, made_at))
    return path


def usage(tree, total):
    (tree / "kubepods.slice" / "memory.current").write_text(f"{total}\n")


def make_agent(tree, pods, kill_rate=None):
    settings = NodeSettings(
        node_name="node-a",
        node_memory_bytes=1100 * MI,
        reserve_bytes=100 * MI,
        eviction=EvictionSettings(buffer_bytes=0, kill_fallback_wait_seconds=WAIT),
    )
    clock = Clock()
    api = Api()
    evictor = fake_evictor(api, clock=clock, kill_rate=kill_rate)
    options = AgentOptions(cgroup_root=tree, kubepods=LOC, margin_bytes=64 * MI)
    agent = NodeAgent(options, settings, pods, evictor, clock=clock)
    return agent, clock, api


def pod_view_metrics(agent):
    registry = CollectorRegistry()
    registry.register(PodViewCollector(agent))
    return generate_latest(registry).decode()


def killed(path):
    return (path / "cgroup.kill").read_text() == "1"


# -- a pod cgroup without a pod object: relist --------------------------------------------


def test_a_pod_cgroup_without_a_pod_object_asks_for_a_relist_at_most_every_30s(tree):
    known = pod("known", 1)
    write_cgroup(tree / pod_cgroup_path(known.uid, known.qos, LOC), 10 * MI)
    pods = Pods([known])
    agent, clock, _ = make_agent(tree, pods)
    usage(tree, 10 * MI)
    agent.step()
    assert pods.relists_asked == 0  # every cgroup has its pod
    pod_dir(tree, "missed", 10 * MI)  # the watch missed this pod
    agent.step()
    assert pods.relists_asked == 0  # the pod may be on its way: a few seconds' grace
    clock.now += UNMATCHED_GRACE
    agent.step()
    assert pods.relists_asked == 1
    missed = str(uuid.uuid5(uuid.NAMESPACE_DNS, "missed"))
    assert agent.status()["pod_view"]["unmatched_cgroups"] == [missed]
    for _ in range(int(RELIST_MIN_INTERVAL) - 1):  # a step a second: no storm
        clock.now += 1
        agent.step()
    assert pods.relists_asked == 1
    clock.now += 1
    agent.step()
    assert pods.relists_asked == 2
    assert agent.status()["pod_view"]["relists_asked"] == 2


# -- no API: kill-only candidates from the cgroups on disk --------------------------------


def unlisted_pods():
    """The watch of an agent started while the API server is down: never listed."""
    pods = Pods()
    pods.connected = False
    pods.synced.clear()
    return pods


def test_an_agent_started_without_the_api_kills_the_newest_pod_cgroup_at_the_line(tree):
    old = pod_dir(tree, "old", 500 * MI, made_at=EPOCH)
    new = pod_dir(tree, "new", 300 * MI, made_at=EPOCH + 60)
    guaranteed = pod_dir(tree, "fixed", 300 * MI, QosClass.GUARANTEED, made_at=EPOCH + 120)
    usage(tree, 1100 * MI)  # above the line (memory.high 936Mi)
    agent, clock, api = make_agent(tree, unlisted_pods())
    decision = agent.step("event")
    assert decision.outcome is D.VICTIMS  # today: no candidates at all
    assert [v.name for v in decision.victims] == [f"cgroup:{new.relative_to(tree)}"]
    assert api.calls == []  # nothing to evict: no name, no API
    assert not killed(new)
    status = agent.status()
    assert status["pod_view"]["blind"] is True
    assert "3 pod(s) known from their cgroup alone, kill-only" in render_table(status)
    [spared] = status["protected"]
    assert spared["pod"] == f"cgroup:{guaranteed.relative_to(tree)}"
    assert "Guaranteed" in spared["why"]
    clock.now += WAIT
    agent.step()
    # the kill fallback: the newest, never the Guaranteed one (the kernel spares it too)
    assert killed(new)
    assert not killed(old) and not killed(guaranteed)
    assert agent.counters["killed"] == 1
    assert agent.evictor.killed_without_event == 1  # no Event without an API: counted
    metrics = pod_view_metrics(agent)
    assert "oomguard_pod_view_blind 1.0" in metrics
    assert "oomguard_kill_only_kills_total 1.0" in metrics


def test_kill_only_candidates_wait_for_the_line(tree):
    new = pod_dir(tree, "new", 300 * MI)
    usage(tree, 900 * MI)  # above the target (889Mi), under the line (936Mi)
    agent, clock, _ = make_agent(tree, unlisted_pods())
    assert agent.step("event").outcome is D.NO_CANDIDATES
    clock.now += WAIT + 1
    agent.step()
    assert not killed(new)
    assert agent.counters["killed"] == 0


def test_an_agent_long_disconnected_sees_pods_started_since(tree):
    known = pod("known", EPOCH)
    write_cgroup(tree / pod_cgroup_path(known.uid, known.qos, LOC), 100 * MI, kill_file=True)
    pods = Pods([known])
    agent, clock, _ = make_agent(tree, pods)
    usage(tree, 100 * MI)
    agent.step()
    pods.connected = False  # the API server goes away
    started_since = pod_dir(tree, "since", 1000 * MI, made_at=EPOCH + 600)
    clock.now += BLIND_AFTER_SECONDS  # a short outage: the last list still stands
    agent.step()
    assert agent.status()["pod_view"]["blind"] is False
    clock.now += 1
    agent.step()
    assert agent.status()["pod_view"]["blind"] is True
    usage(tree, 1100 * MI)
    decision = agent.step("event")
    assert [v.name for v in decision.victims] == [f"cgroup:{started_since.relative_to(tree)}"]
    clock.now += WAIT
    agent.step()
    assert killed(started_since)


def test_kill_only_kills_are_rate_limited_like_other_kills(tree):
    a = pod_dir(tree, "a", 150 * MI, made_at=EPOCH)
    b = pod_dir(tree, "b", 150 * MI, made_at=EPOCH + 1)
    usage(tree, 1100 * MI)  # 211Mi to free: both
    bucket = TokenBucket(per_minute=1, burst=1, now=100.0)
    agent, clock, _ = make_agent(tree, unlisted_pods(), kill_rate=bucket)
    agent.step("event")
    clock.now += WAIT
    agent.step()
    assert killed(b) and not killed(a)  # newest first, one kill a minute
    assert agent.evictor.counts[Outcome.RATE_LIMITED] == 1
    clock.now += 60
    agent.step()
    assert killed(a)


def test_the_agent_as_built_with_no_api_server_kills_from_the_cgroups_on_disk(tree):
    """The whole wiring (``build_agent``) with an API server nobody answers for: the real
    pod watch never lists, the agent still frees memory from the cgroups on disk."""
    new = pod_dir(tree, "new", 300 * MI, made_at=EPOCH + 60)
    old = pod_dir(tree, "old", 500 * MI, made_at=EPOCH)
    usage(tree, 1100 * MI)
    config = Configuration(host="http://127.0.0.1:1")  # refused at once
    settings = NodeSettings(
        node_name="node-a",
        node_memory_bytes=1100 * MI,
        reserve_bytes=100 * MI,
        eviction=EvictionSettings(buffer_bytes=0, kill_fallback_wait_seconds=0),
    )
    options = AgentOptions(cgroup_root=tree, kubepods=LOC, margin_bytes=64 * MI)
    parts = build_agent(CoreV1Api(ApiClient(config)), options, settings, monitors=[])
    stop = StopSignal()
    watching = threading.Thread(target=parts.watch.run, args=(stop,), daemon=True)
    watching.start()
    try:
        assert wait_for(lambda: parts.watch.errors >= 1)  # the API server is not there
        parts.agent.step("event")
        parts.agent.step()
        assert killed(new) and not killed(old)
        body = parts.agent.metrics.exposition().decode()
        assert "oomguard_kill_only_kills_total 1.0" in body
        assert not parts.watch.synced.is_set()
    finally:
        stop.set()
        parts.watch.stop()
        watching.join(10)
