"""The agent refuses settings that would leave pods less than a floor, or that cannot be
worked out at all (reserve >= node memory, node memory unknown): it keeps the last good
settings and memory.high, and says Degraded with the reason, never Applied."""

from datetime import UTC, datetime

import pytest
from monitor_fakes import MI
from test_node_agent_reload import high_file, make_agent, reserve_object

from oomguard.monitor.kube.node_reserve import reserve_status, state_for


def conditions(agent):
    status = reserve_status(agent.report(), None, datetime.now(UTC))
    return {c["type"]: c for c in status["conditions"]}


@pytest.mark.parametrize(
    ("case", "spec"),
    [
        ("reserve of 99.9%", {"reserveBytes": 1998 * MI}),
        ("reserve above node memory", {"reserveBytes": 3000 * MI}),
        ("node memory unknown", {"nodeMemoryBytes": 0}),
        ("huge buffer", {"eviction": {"bufferBytes": 1500 * MI}}),
        ("tiny usagePercent", {"monitor": {"threshold": {"usagePercent": 5}}}),
    ],
)
def test_unsafe_settings_are_refused_and_the_last_good_kept(tmp_path, case, spec):
    agent = make_agent(tmp_path)
    good = state_for(reserve_object(300), "node-a", 2000 * MI, None)
    agent.apply_reserve(good)
    assert high_file(tmp_path) == str(1700 * MI)
    body = reserve_object(300, 2)
    body["spec"] |= spec
    agent.apply_reserve(state_for(body, "node-a", 2000 * MI, agent.reserve_state))
    assert high_file(tmp_path) == str(1700 * MI), case  # memory.high untouched
    assert agent.settings == good.settings
    found = conditions(agent)
    assert found["Degraded"]["status"] == "True"
    assert found["Degraded"]["reason"] == "UnsafeSettings"
    assert found["Enforcing"]["reason"] != "Applied"
    agent.step()  # the guard stays armed with the last good settings
    assert high_file(tmp_path) == str(1700 * MI)


def test_safe_settings_after_unsafe_ones_are_applied(tmp_path):
    agent = make_agent(tmp_path)
    agent.apply_reserve(state_for(reserve_object(300), "node-a", 2000 * MI, None))
    agent.apply_reserve(state_for(reserve_object(1999, 2), "node-a", 2000 * MI, None))
    agent.apply_reserve(state_for(reserve_object(400, 3), "node-a", 2000 * MI, None))
    assert high_file(tmp_path) == str(1600 * MI)
    assert conditions(agent)["Degraded"]["status"] == "False"
