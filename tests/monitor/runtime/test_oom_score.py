"""Item 8 of "do no harm": the agent lowers its own oom_score_adj whatever its priority class
and QoS; a refusal is logged, never fatal."""

import logging

from oomguard.monitor.runtime.oom_score import AGENT_OOM_SCORE_ADJ, lower_own_oom_score


def test_the_agent_lowers_its_own_oom_score(tmp_path):
    adj = tmp_path / "oom_score_adj"
    adj.write_text("999\n")  # what a Burstable pod gets
    assert lower_own_oom_score(path=adj) is True
    assert adj.read_text() == f"{AGENT_OOM_SCORE_ADJ}\n"
    assert AGENT_OOM_SCORE_ADJ == -998  # below every pod (-997 at best), above the kubelet


def test_a_refusal_is_logged_and_not_fatal(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="oomguard.node"):
        assert lower_own_oom_score(path=tmp_path / "missing" / "oom_score_adj") is False
    assert "cannot set the agent's oom_score_adj" in caplog.text


def test_the_node_command_lowers_it_before_it_guards(tmp_path, monkeypatch):
    from oomguard.cli import main
    from oomguard.monitor.modes import node_runtime
    from oomguard.monitor.runtime import oom_score

    calls = []
    monkeypatch.setattr(oom_score, "lower_own_oom_score", lambda: calls.append("oom") or True)
    monkeypatch.setattr(node_runtime, "run_agent", lambda *args: calls.append("agent") or 0)
    root = tmp_path / "cgroup"
    (root / "kubepods.slice").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("memory\n")
    argv = ["monitor", "--node-name", "n", "--cgroup-root", str(root)]
    assert main([*argv, "--state-dir", str(tmp_path / "state")]) == 0
    assert calls == ["oom", "agent"]
