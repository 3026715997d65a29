"""The chart's alerts and dashboard speak about metrics that exist, in valid PromQL, and the
alerts fire when they should.

Metric names are checked against what the agent really exposes (GuardMetrics over a cgroup
directory with the kernel's files). promtool (Debian's prometheus package) checks the rule
file and runs unit tests of the alerts on synthetic series (`promtool test rules`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_tools import REPO, VALUES_DIR, one, render

pytestmark = [pytest.mark.helm, pytest.mark.prometheus]

NAMESPACE = "oomguard-system"
METRIC = re.compile(r"\b(oomguard_[a-z_]+|up)\b(?=\s*[{\[(]|\s*\)|\s*[<>=!]|\s*$)")


@pytest.fixture(scope="module")
def monitoring_objects(helm_home: Path) -> list[dict[str, Any]]:
    return render(helm_home, [VALUES_DIR / "monitoring.yaml"], namespace=NAMESPACE)


def _rule_groups(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = one(objects, "PrometheusRule")["spec"]["groups"]
    return groups


def _dashboard_exprs(objects: list[dict[str, Any]]) -> list[str]:
    dashboard = json.loads(one(objects, "ConfigMap", "dashboard")["data"]["oomguard.json"])
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [
        v["query"]["query"]
        for v in dashboard["templating"]["list"]
        if "query" in v and isinstance(v["query"], dict)
    ]
    return exprs


def _exposed_metric_names(tmp_path: Path) -> set[str]:
    """Series names the node agent exposes, with a cgroup dir holding the kernel's files."""
    from oomguard.monitor.feedback.metrics_registry import GuardMetrics

    cg = tmp_path / "kubepods.slice"
    cg.mkdir()
    (cg / "memory.high").write_text("1073741824\n")
    (cg / "memory.max").write_text("2147483648\n")
    (cg / "memory.current").write_text("536870912\n")
    (cg / "memory.stat").write_text("anon 1000\nfile 2000\ninactive_file 500\nactive_file 100\n")
    (cg / "memory.events").write_text("low 0\nhigh 3\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n")
    (cg / "memory.events.local").write_text("low 0\nhigh 3\nmax 0\noom 0\noom_kill 0\n")
    metrics = GuardMetrics("node", cg)
    metrics.set_monitor_up("event", True)
    from oomguard.monitor.feedback.api_health_metrics import ApiHealthMetrics
    from oomguard.monitor.kube.watch_health import WatchName

    ApiHealthMetrics(metrics.registry, list(WatchName))
    text = metrics.exposition().decode()
    # the operator's registry, the webhook's metrics included
    from prometheus_client import CollectorRegistry, generate_latest

    from oomguard.operator.metrics import OperatorMetrics
    from oomguard.operator.webhook.webhook_metrics import WebhookMetrics

    registry = CollectorRegistry()
    operator = OperatorMetrics(registry)
    WebhookMetrics(registry)
    operator.write_errors.labels("NodeMemoryReserve", "patch")
    operator.reconciles.labels(trigger="timer")
    text += generate_latest(registry).decode()
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = re.split(r"[{ ]", line, maxsplit=1)[0]
            names.add(name)
            names.add(re.sub(r"_(bucket|sum|count)$", "", name))
    return names


def test_alerts_and_dashboard_use_only_exposed_metrics(
    monitoring_objects: list[dict[str, Any]], tmp_path: Path
) -> None:
    exposed = _exposed_metric_names(tmp_path) | {"up"}
    used = set()
    for group in _rule_groups(monitoring_objects):
        for rule in group["rules"]:
            used |= set(METRIC.findall(rule["expr"]))
    for expr in _dashboard_exprs(monitoring_objects):
        used |= set(METRIC.findall(expr))
    assert {
        "oomguard_memory_events_local_total",
        "oomguard_node_oom_kills_total",
        "oomguard_actions_total",
        "oomguard_operator_webhook_review_duration_seconds_bucket",
        "oomguard_episode_duration_seconds_bucket",
        "oomguard_eviction_api_requests_total",
        "oomguard_eviction_api_request_duration_seconds_bucket",
        "oomguard_watch_restarts_total",
        "oomguard_watch_last_success_timestamp_seconds",
        "up",
    } <= used
    assert used - exposed == set()


def _promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool missing: apt-get install prometheus"
    return path


def test_promtool_checks_the_rules(
    monitoring_objects: list[dict[str, Any]], tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": _rule_groups(monitoring_objects)}))
    result = subprocess.run(
        [_promtool(), "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 17 rules found" in result.stdout


def test_dashboard_queries_parse(monitoring_objects: list[dict[str, Any]], tmp_path: Path) -> None:
    """promtool parses PromQL in recording rules: each dashboard query becomes one."""
    substitutions = {
        "$__rate_interval": "5m",
        "$__range": "1h",
        "$namespace": NAMESPACE,
        "$node": ".*",
    }
    rules = []
    for i, expr in enumerate(_dashboard_exprs(monitoring_objects)):
        for old, new in substitutions.items():
            expr = expr.replace(old, new)
        if expr.startswith("label_values("):  # Grafana's own function, not PromQL
            expr = expr[len("label_values(") : expr.rindex(",")]
        rules.append({"record": f"dashboard:query{i}", "expr": expr})
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [_promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _panels(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    dashboard = json.loads(one(objects, "ConfigMap", "dashboard")["data"]["oomguard.json"])
    return {p["title"]: p for p in dashboard["panels"]}


def test_dashboard_answers_the_first_questions(monitoring_objects: list[dict[str, Any]]) -> None:
    """Is every agent up, how much room is left per node, did the pods' cgroup itself OOM,
    and are the operator and the webhook healthy."""
    panels = _panels(monitoring_objects)
    assert panels["Agents up"]["type"] == "stat"
    assert "up{" in panels["Agents up"]["targets"][0]["expr"]
    headroom = panels["Headroom per node: memory.high - working set"]
    assert headroom["type"] == "table"
    first = headroom["targets"][0]["expr"]
    assert "oomguard_memory_high_bytes" in first and "oomguard_memory_working_set_bytes" in first
    assert first.index("oomguard_memory_high_bytes") < first.index(" - ")
    ooms = panels["Pods' cgroup OOMs"]
    assert ooms["type"] == "stat"
    assert "oomguard_memory_events_local_total{" in ooms["targets"][0]["expr"]
    assert 'event="oom"' in ooms["targets"][0]["expr"]
    operator = " ".join(t["expr"] for t in panels["Operator and eviction webhook"]["targets"])
    for metric in (
        "oomguard_operator_reconciles_total",
        "oomguard_operator_write_errors_total",
        "oomguard_operator_webhook_reviews_total",
        "oomguard_operator_webhook_review_duration_seconds_bucket",
    ):
        assert metric in operator
    ids = [p["id"] for p in panels.values()]
    assert len(ids) == len(set(ids))


def test_dashboard_shows_episodes_api_health_and_machine_ooms(
    monitoring_objects: list[dict[str, Any]],
) -> None:
    panels = _panels(monitoring_objects)

    def exprs(title: str) -> str:
        return " ".join(t["expr"] for t in panels[title]["targets"])

    assert "oomguard_episode_duration_seconds_bucket" in exprs("Episode duration (p50, p95)")
    api = exprs("Eviction API: requests by answer, p99 latency")
    assert "sum by (code) (increase(oomguard_eviction_api_requests_total{" in api
    assert "oomguard_eviction_api_request_duration_seconds_bucket" in api
    watches = exprs("Watches: age of the agent's view, restarts")
    assert "time() - oomguard_watch_last_success_timestamp_seconds{" in watches
    assert "oomguard_watch_restarts_total" in watches
    machine = panels["Pods killed by a machine-wide OOM"]
    assert machine["type"] == "stat"
    assert 'event="oom_kill"' in exprs(machine["title"]) and "unless on (node)" in exprs(
        machine["title"]
    )


DASHBOARD_CHECK = REPO / "tests" / "tools" / "cache" / "bin" / "dashboard-check"


def _dashboard_check(path: Path) -> subprocess.CompletedProcess[str]:
    assert DASHBOARD_CHECK.exists(), f"{DASHBOARD_CHECK} missing: run tests/tools/build"
    return subprocess.run(
        [str(DASHBOARD_CHECK), str(path)], capture_output=True, text=True, check=False, timeout=60
    )


def test_dashboard_matches_grafanas_dashboard_schema(
    monitoring_objects: list[dict[str, Any]], tmp_path: Path
) -> None:
    """The dashboard the chart ships, decoded strictly into grafana-foundation-sdk's types
    (generated from Grafana's schema): no required field missing, no unknown field, in the
    dashboard, each panel's options and field config, and each Prometheus query. No Grafana
    server runs here; this is the schema check, not a load into Grafana."""
    shipped = tmp_path / "oomguard.json"
    shipped.write_text(one(monitoring_objects, "ConfigMap", "dashboard")["data"]["oomguard.json"])
    result = _dashboard_check(shipped)
    assert result.returncode == 0, result.stdout + result.stderr
    panels = len(json.loads(shipped.read_text())["panels"])
    assert f"valid, {panels} panels" in result.stdout
    # the check can fail: a misspelt option and a misspelt query field are refused
    broken = json.loads(shipped.read_text())
    broken["panels"][0]["options"]["colourMode"] = "background"
    broken["panels"][-1]["targets"][0]["exp"] = "up"
    bad = tmp_path / "broken.json"
    bad.write_text(json.dumps(broken))
    result = _dashboard_check(bad)
    assert result.returncode == 1
    assert "unexpected field 'colourMode'" in result.stdout
    assert "unexpected field 'exp'" in result.stdout
