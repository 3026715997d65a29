"""The node agent's metrics wiring: decisions, actions by outcome, bytes freed, monitors up,
and /metrics on the agent's HTTP server, on a plain-file imitation of a kubepods tree."""

import shutil
import urllib.request
from pathlib import PurePosixPath

from monitor_fakes import MI, Api, Clock, Pods, fake_evictor, pod, write_cgroup
from prometheus_client.parser import text_string_to_metric_families

from oomguard.monitor.actions.metered_eviction_api import MeteredEvictionApi
from oomguard.monitor.feedback.http_endpoints import HttpEndpoints
from oomguard.monitor.feedback.metrics_registry import GuardMetrics
from oomguard.monitor.kube.pod_cgroups import (
    CgroupDriver,
    KubepodsLocation,
    pod_cgroup_path,
)
from oomguard.monitor.modes.node_agent import AgentOptions, NodeAgent
from oomguard.monitor.modes.node_runtime import build_agent
from oomguard.monitor.settings import EvictionSettings, NodeSettings

LOC = KubepodsLocation(CgroupDriver.SYSTEMD, PurePosixPath("kubepods.slice"))


def settings():
    return NodeSettings(
        node_name="node-a",
        node_memory_bytes=1100 * MI,
        reserve_bytes=100 * MI,
        eviction=EvictionSettings(buffer_bytes=0, kill_fallback_wait_seconds=10),
    )


def test_agent_records_decisions_actions_and_bytes(tmp_path):
    write_cgroup(tmp_path / "kubepods.slice", 0, maximum=str(1000 * MI), events_high=3)
    pods = [pod("old", 1), pod("mid", 2), pod("new", 3)]
    memory = {"old": 500 * MI, "mid": 300 * MI, "new": 200 * MI}
    for p in pods:
        write_cgroup(tmp_path / pod_cgroup_path(p.uid, p.qos, LOC), memory[p.name], events_high=3)
    (tmp_path / "kubepods.slice" / "memory.current").write_text(f"{1000 * MI}\n")
    evictor = fake_evictor(Api({"new": 429}))
    options = AgentOptions(cgroup_root=tmp_path, kubepods=LOC, margin_bytes=64 * MI)
    metrics = GuardMetrics("node", tmp_path / "kubepods.slice")
    agent = NodeAgent(options, settings(), Pods(pods), evictor, metrics=metrics)
    agent.step("event,threshold", detected_at=agent._clock() - 0.25)

    def value(name, **labels):
        return metrics.registry.get_sample_value(name, labels)

    # the trigger was noticed 0.25 s before the step: one detection -> decision sample
    assert value("oomguard_detection_latency_seconds_count", trigger="event") == 1
    assert value("oomguard_detection_latency_seconds_sum", trigger="event") >= 0.25

    assert value("oomguard_decisions_total", trigger="event") == 1
    assert value("oomguard_victims_total") >= 1
    assert value("oomguard_actions_total", outcome="pdb_blocked") == 1
    assert value("oomguard_actions_total", outcome="evicted") == 1
    assert value("oomguard_freed_bytes_total") == 300 * MI  # "mid"; the blocked one freed nothing
    assert value("oomguard_decision_to_action_seconds_count") == 2
    assert value("oomguard_memory_usage_bytes") == 1000 * MI
    assert value("oomguard_memory_events_total", event="high") == 3


def test_build_agent_serves_metrics_next_to_the_probes(tmp_path):
    write_cgroup(tmp_path / "kubepods.slice", 123 * MI, maximum=str(1000 * MI), events_high=3)
    options = AgentOptions(cgroup_root=tmp_path, kubepods=LOC)
    http = HttpEndpoints("127.0.0.1", 0)
    parts = build_agent(object(), options, settings(), monitors=[], http=http)
    assert parts.agent.metrics is not None
    http.start()
    try:
        url = f"http://127.0.0.1:{http.port}/metrics"
        with urllib.request.urlopen(url, timeout=30) as response:
            body = response.read().decode()
    finally:
        http.stop()
    assert 'oomguard_build_info{kernel="' in body
    assert 'mode="node"' in body
    samples = {s.name: s.value for f in text_string_to_metric_families(body) for s in f.samples}
    assert samples["oomguard_memory_usage_bytes"] == 123 * MI
    # the API health series: the pod watch (no reserve watch without a CustomObjectsApi)
    assert 'oomguard_watch_last_success_timestamp_seconds{watch="pods"}' in body
    assert 'watch="reserve"' not in body
    assert 'oomguard_eviction_api_requests_total{code="201"} 0.0' in body


def test_build_agent_meters_eviction_requests_and_both_watches(tmp_path):
    write_cgroup(tmp_path / "kubepods.slice", 0, maximum=str(1000 * MI), events_high=0)
    options = AgentOptions(cgroup_root=tmp_path, kubepods=LOC)
    parts = build_agent(object(), options, settings(), monitors=[], custom_api=object())
    metrics = parts.agent.metrics
    assert metrics is not None
    evictor_api = parts.agent.evictor.api
    assert isinstance(evictor_api, MeteredEvictionApi)
    evictor_api._api = Api({"x": 503})  # the real one would need an API server
    evictor_api.evict("apps", "x", 10)
    value = metrics.registry.get_sample_value
    assert value("oomguard_eviction_api_requests_total", {"code": "503"}) == 1
    for watch in ("pods", "reserve"):
        labels = {"watch": watch}
        assert value("oomguard_watch_last_success_timestamp_seconds", labels) > 0


def test_an_episode_is_timed_from_the_breach_until_the_victims_are_gone(tmp_path):
    write_cgroup(tmp_path / "kubepods.slice", 0, maximum=str(1000 * MI), events_high=3)
    pods = [pod("old", 1), pod("new", 2)]
    memory = {"old": 600 * MI, "new": 400 * MI}
    for p in pods:
        write_cgroup(tmp_path / pod_cgroup_path(p.uid, p.qos, LOC), memory[p.name])
    current = tmp_path / "kubepods.slice" / "memory.current"
    current.write_text(f"{1000 * MI}\n")
    clock = Clock(100.0)
    evictor = fake_evictor(clock=clock)
    options = AgentOptions(cgroup_root=tmp_path, kubepods=LOC, margin_bytes=64 * MI)
    metrics = GuardMetrics("node", tmp_path / "kubepods.slice")
    source = Pods(pods)
    agent = NodeAgent(options, settings(), source, evictor, clock=clock, metrics=metrics)

    def episodes():
        count = metrics.registry.get_sample_value("oomguard_episode_duration_seconds_count")
        total = metrics.registry.get_sample_value("oomguard_episode_duration_seconds_sum")
        return count, total

    agent.step("event", detected_at=99.5)  # noticed at 99.5 s: "new" is evicted
    assert episodes() == (0, 0)
    clock.now = 105.0
    agent.step()  # "new" is still there (terminating): the episode lasts
    assert episodes() == (0, 0)
    del source.pods[pods[1].uid]  # the pod and its cgroup are gone
    shutil.rmtree(tmp_path / pod_cgroup_path(pods[1].uid, pods[1].qos, LOC))
    current.write_text(f"{600 * MI}\n")
    clock.now = 112.0
    agent.step()  # gone, usage under target: the episode ended, 12.5 s after the breach
    assert episodes() == (1, 12.5)
    clock.now = 113.0
    agent.step()  # quiet: nothing more
    assert episodes() == (1, 12.5)
