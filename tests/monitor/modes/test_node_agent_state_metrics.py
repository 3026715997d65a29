"""build_agent registers the agent's state (reserve, line, target, dry run, source) on its
metrics endpoint."""

import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from test_node_agent_metrics import LOC, MI, settings, write_cgroup

from oomguard.monitor.feedback.http_endpoints import HttpEndpoints
from oomguard.monitor.modes.node_agent import AgentOptions
from oomguard.monitor.modes.node_runtime import build_agent


def test_agent_state_is_on_the_metrics_endpoint(tmp_path):
    write_cgroup(tmp_path / "kubepods.slice", 123 * MI, maximum=str(1000 * MI), events_high=3)
    options = AgentOptions(cgroup_root=tmp_path, kubepods=LOC)
    http = HttpEndpoints("127.0.0.1", 0)
    parts = build_agent(object(), options, settings(), monitors=[], http=http)
    http.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http.port}/metrics", timeout=30) as r:
            body = r.read().decode()
    finally:
        http.stop()
    samples = {s.name: s for f in text_string_to_metric_families(body) for s in f.samples}
    agent = parts.agent
    assert samples["oomguard_reserve_bytes"].value == agent.settings.reserve_bytes
    assert samples["oomguard_limit_bytes"].value == agent.limit_bytes()
    assert samples["oomguard_target_bytes"].value == agent.target_bytes()
    assert samples["oomguard_dry_run"].value == (1 if agent.settings.dry_run else 0)
    assert samples["oomguard_reserve_info"].labels["source"] == "fallback"
