"""Every alert of the chart's PrometheusRule, run by promtool on synthetic series: it fires on
the series that should fire it, with its labels and annotations, and stays silent on the ones
that should not (a container at its own memory.max above all). Each alert has a runbook page.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_tools import REPO, VALUES_DIR, one, render, run_helm, template_args

pytestmark = [pytest.mark.helm, pytest.mark.prometheus]

NAMESPACE = "oomguard-system"
RUNBOOKS = REPO / "docs" / "runbooks"
AGENT_JOB = "oomguard-agent-metrics"
OPERATOR_JOB = "oomguard-operator-metrics"
# monitoring.yaml: agentDownFor 10m, evictionsPerMinute 3, webhook timeoutSeconds 5 (2.5 s line).


@pytest.fixture(scope="module")
def rules(helm_home: Path) -> list[dict[str, Any]]:
    objects = render(helm_home, [VALUES_DIR / "monitoring.yaml"], namespace=NAMESPACE)
    return [r for g in one(objects, "PrometheusRule")["spec"]["groups"] for r in g["rules"]]


def _promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool missing: apt-get install prometheus"
    return path


def _annotations(rule: dict[str, Any], labels: dict[str, str], value: str) -> dict[str, str]:
    """The annotations as Prometheus expands them (the templates used: $labels.x, humanize)."""
    out = {}
    for key, text in rule["annotations"].items():
        text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)
        out[key] = re.sub(r"\{\{ \$value \| \w+ \}\}", value, text)
    return out


def _series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def agent(node: str, **extra: str) -> dict[str, str]:
    return {"namespace": NAMESPACE, "node": node, "pod": f"oomguard-agent-{node}", **extra}


def _run(
    rules: list[dict[str, Any]],
    tmp_path: Path,
    series: list[dict[str, str]],
    cases: list[tuple[str, str, list[tuple[dict[str, str], str]]]],
) -> None:
    """cases: (eval time, alert, [(labels the alert carries, humanized value)]) -- [] silent."""
    by_name = {r["alert"]: r for r in rules if "alert" in r}
    rule_file = tmp_path / "rules.yaml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "oomguard", "rules": rules}]}))
    tests = []
    for at, alert, firing in cases:
        rule = by_name[alert]
        exp = []
        for labels, value in firing:
            full = {**labels, **rule.get("labels", {})}
            exp.append({"exp_labels": full, "exp_annotations": _annotations(rule, full, value)})
        tests.append({"eval_time": at, "alertname": alert, "exp_alerts": exp})
    spec = {
        "rule_files": [str(rule_file)],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": tests}],
    }
    path = tmp_path / "tests.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = subprocess.run(
        [_promtool(), "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_kernel_oom_alert_ignores_container_ooms(rules, tmp_path) -> None:
    """node-a: kubepods itself OOMed. node-b: a container hit its own memory.max (the subtree
    oom_kill and the machine counter rise together; kubepods' own oom stays). node-c: a kill
    outside the pods (the machine counter rises alone)."""
    series = [
        _series("oomguard_memory_events_local_total", agent("node-a", event="oom"), "0x4 1x10"),
        _series("oomguard_memory_events_total", agent("node-a", event="oom_kill"), "0x4 1x10"),
        _series("oomguard_node_oom_kills_total", agent("node-a"), "0x4 1x10"),
        _series("oomguard_memory_events_local_total", agent("node-b", event="oom"), "0x15"),
        _series("oomguard_memory_events_total", agent("node-b", event="oom"), "0x4 3x10"),
        _series("oomguard_memory_events_total", agent("node-b", event="oom_kill"), "0x4 3x10"),
        _series("oomguard_node_oom_kills_total", agent("node-b"), "7x4 10x10"),
        _series("oomguard_memory_events_local_total", agent("node-c", event="oom"), "0x15"),
        _series("oomguard_memory_events_total", agent("node-c", event="oom_kill"), "0x15"),
        _series("oomguard_node_oom_kills_total", agent("node-c"), "0x4 2x10"),
    ]
    kubepods_oom = (agent("node-a", event="oom"), "1")
    outside = ({"namespace": NAMESPACE, "node": "node-c"}, "")
    _run(
        rules,
        tmp_path,
        series,
        [
            ("3m", "OOMGuardKernelOOMKill", []),
            ("6m", "OOMGuardKernelOOMKill", [kubepods_oom]),
            ("6m", "OOMGuardOOMKillOutsidePods", [outside]),
            ("13m", "OOMGuardKernelOOMKill", []),
        ],
    )


def test_each_oom_alert_fires_on_its_own_kind_of_oom_only(rules, tmp_path) -> None:
    """The series each kind of OOM moves on the kernel (memory.events counts oom at the OOM
    domain and oom_kill at the victim's cgroup, both up to kubepods; /proc/vmstat counts
    every kill):

    - node-a: kubepods itself at its limit: its own oom, the subtree's oom and oom_kill;
    - node-b: a container at its own memory.max, oom.group killing its 3 processes: the
      subtree's oom once and oom_kill thrice, kubepods' own oom not at all;
    - node-c: the machine ran out and the kernel chose 2 pod processes: the subtree's
      oom_kill alone (no cgroup in it was an OOM domain);
    - node-d: the machine ran out and the kernel chose a system process: /proc/vmstat alone.
    """
    rising, flat = "0x4 1x10", "0x15"

    def node(name, local_oom, oom, oom_kill, vmstat):
        return [
            _series("oomguard_memory_events_local_total", agent(name, event="oom"), local_oom),
            _series("oomguard_memory_events_total", agent(name, event="oom"), oom),
            _series("oomguard_memory_events_total", agent(name, event="oom_kill"), oom_kill),
            _series("oomguard_node_oom_kills_total", agent(name), vmstat),
        ]

    series = [
        *node("node-a", rising, rising, rising, rising),
        *node("node-b", flat, rising, "0x4 3x10", "5x4 8x10"),
        *node("node-c", flat, flat, "0x4 2x10", "0x4 2x10"),
        *node("node-d", flat, flat, flat, "0x4 1x10"),
    ]
    ns = {"namespace": NAMESPACE}
    _run(
        rules,
        tmp_path,
        series,
        [
            ("3m", "OOMGuardMachineOOMKilledPods", []),
            ("6m", "OOMGuardKernelOOMKill", [(agent("node-a", event="oom"), "1")]),
            ("6m", "OOMGuardMachineOOMKilledPods", [({**ns, "node": "node-c"}, "2")]),
            ("6m", "OOMGuardOOMKillOutsidePods", [({**ns, "node": "node-d"}, "")]),
            ("13m", "OOMGuardMachineOOMKilledPods", []),
        ],
    )


def test_eviction_api_errors_and_stale_watches(rules, tmp_path) -> None:
    """node-a: two 503s and an unanswered request among successes; node-b: only successes,
    pods already gone and PDB/APF 429s. node-a's pod watch stops hearing from the server at
    0 s; node-b's hears every minute."""
    series = [
        _series("oomguard_eviction_api_requests_total", agent("node-a", code="201"), "0+1x20"),
        _series("oomguard_eviction_api_requests_total", agent("node-a", code="503"), "0x3 2x16"),
        _series(
            "oomguard_eviction_api_requests_total", agent("node-a", code="unreachable"), "0x3 1x16"
        ),
        *[
            _series("oomguard_eviction_api_requests_total", agent("node-b", code=c), "0+5x20")
            for c in ("201", "404", "429")
        ],
        _series(
            "oomguard_watch_last_success_timestamp_seconds", agent("node-a", watch="pods"), "0x20"
        ),
        _series(
            "oomguard_watch_last_success_timestamp_seconds",
            agent("node-b", watch="pods"),
            "0+60x20",
        ),
    ]
    node_a = {"namespace": NAMESPACE, "node": "node-a"}
    _run(
        rules,
        tmp_path,
        series,
        [
            ("3m", "OOMGuardEvictionAPIErrors", []),
            (
                "5m",
                "OOMGuardEvictionAPIErrors",
                [({**node_a, "code": "503"}, "2"), ({**node_a, "code": "unreachable"}, "1")],
            ),
            ("15m", "OOMGuardWatchStale", []),
            ("16m", "OOMGuardWatchStale", [(agent("node-a", watch="pods"), "16m 0s")]),
        ],
    )


def test_eviction_rate_and_failed_actions(rules, tmp_path) -> None:
    series = [
        _series("oomguard_actions_total", agent("node-a", outcome="evicted"), "0+10x15"),
        # PDB-blocked and dry-run outcomes free nothing: never counted as evictions or failures.
        _series("oomguard_actions_total", agent("node-a", outcome="pdb_blocked"), "0+100x15"),
        _series("oomguard_actions_total", agent("node-b", outcome="dry_run"), "0+100x15"),
        _series("oomguard_actions_total", agent("node-b", outcome="failed"), "0x3 1x12"),
    ]
    _run(
        rules,
        tmp_path,
        series,
        [
            (
                "12m",
                "OOMGuardEvictionRateHigh",
                [({"namespace": NAMESPACE, "node": "node-a"}, "10")],
            ),
            ("3m", "OOMGuardActionsFailing", []),
            ("5m", "OOMGuardActionsFailing", [(agent("node-b", outcome="failed"), "")]),
        ],
    )


def test_agent_down_missing_and_degraded(rules, tmp_path) -> None:
    """node-a stops answering; node-d has no agent at all; node-v1 has none but carries the
    cgroup v1 label (exported by kube-state-metrics), so it is left out."""
    ksm = {"job": "kube-state-metrics", "namespace": "monitoring"}
    series = [
        _series("up", agent("node-a", job=AGENT_JOB), "1 1 0x15"),
        _series("up", agent("node-b", job=AGENT_JOB), "1x17"),
        _series("oomguard_monitor_up", agent("node-b", monitor="pressure"), "1 0x15"),
        _series("oomguard_monitor_up", agent("node-b", monitor="event"), "1x16"),
        *[_series("kube_node_info", {**ksm, "node": n}, "1x17") for n in ("node-a", "node-b")],
        _series("kube_node_info", {**ksm, "node": "node-d"}, "1x17"),
        _series("kube_node_info", {**ksm, "node": "node-v1"}, "1x17"),
        _series(
            "kube_node_labels",
            {**ksm, "node": "node-v1", "label_oomguard_io_cgroup_v1": "true"},
            "1x17",
        ),
    ]
    _run(
        rules,
        tmp_path,
        series,
        [
            ("8m", "OOMGuardAgentDown", []),
            ("13m", "OOMGuardAgentDown", [(agent("node-a", job=AGENT_JOB), "0")]),
            ("8m", "OOMGuardAgentMissing", []),
            ("13m", "OOMGuardAgentMissing", [({"node": "node-d"}, "")]),
            ("13m", "OOMGuardAgentDegraded", [(agent("node-b"), "0")]),
        ],
    )


def test_operator_alerts(rules, tmp_path) -> None:
    op = {"namespace": NAMESPACE, "pod": "oomguard-operator-x", "job": OPERATOR_JOB}
    series = [
        _series("up", op, "1 1 0x15"),
        _series(
            "oomguard_operator_write_errors_total",
            {**op, "kind": "NodeMemoryReserve", "verb": "patch"},
            "0+1x20",
        ),
        _series(
            "oomguard_operator_write_errors_total",
            {**op, "kind": "Event", "verb": "create"},
            "0x20",
        ),
        _series("oomguard_operator_invalid_policies", op, "0 0 1x15"),
        _series("oomguard_operator_conflicting_nodes", op, "0 0 2x15"),
    ]
    ns = {"namespace": NAMESPACE}
    _run(
        rules,
        tmp_path,
        series,
        [
            ("8m", "OOMGuardOperatorDown", []),
            ("13m", "OOMGuardOperatorDown", [(ns, "")]),
            ("8m", "OOMGuardOperatorWriteErrors", []),
            (
                "13m",
                "OOMGuardOperatorWriteErrors",
                [({**ns, "kind": "NodeMemoryReserve", "verb": "patch"}, "")],
            ),
            ("8m", "OOMGuardPolicyInvalid", []),
            ("13m", "OOMGuardPolicyInvalid", [(ns, "1")]),
            ("13m", "OOMGuardPolicyConflict", [(ns, "2")]),
        ],
    )


def _buckets(op: dict[str, str], slow: bool) -> list[dict[str, str]]:
    """Review durations at 1 per second: all under 5 ms, or all between 2.5 s and 5 s (the
    alert's line is half the 5 s timeout)."""
    bounds = ["0.005", "1", "2.5", "5", "10", "30", "+Inf"]
    out = []
    for le in bounds:
        rising = float(le) >= 5 if slow else True
        out.append(
            _series(
                "oomguard_operator_webhook_review_duration_seconds_bucket",
                {**op, "le": le},
                "0+60x20" if rising else "0x20",
            )
        )
    return out


def test_webhook_alerts(rules, tmp_path) -> None:
    slow = {"namespace": NAMESPACE, "pod": "oomguard-operator-x", "job": OPERATOR_JOB}
    series = [
        *_buckets(slow, slow=True),
        _series("oomguard_operator_webhook_errors_total", slow, "0x3 2x16"),
    ]
    ns = {"namespace": NAMESPACE}
    _run(
        rules,
        tmp_path,
        series,
        [
            ("3m", "OOMGuardWebhookErrors", []),
            ("5m", "OOMGuardWebhookErrors", [(ns, "")]),
            ("8m", "OOMGuardWebhookSlow", []),
            ("13m", "OOMGuardWebhookSlow", [(ns, "")]),
        ],
    )


def test_reviews_the_apiserver_admitted_without_the_webhook_fire_failed_open(
    rules, tmp_path
) -> None:
    """The apiserver's fail-open counter for our webhook fires it; another webhook's not."""
    apiserver = {"job": "apiserver", "type": "validating"}
    ours = {**apiserver, "name": "agent-evictions.oomguard.io"}
    series = [
        _series("apiserver_admission_webhook_fail_open_count", ours, "0x3 13x16"),
        _series(
            "apiserver_admission_webhook_fail_open_count",
            {**apiserver, "name": "other.example.com"},
            "0+5x20",
        ),
    ]
    _run(
        rules,
        tmp_path,
        series,
        [
            ("3m", "OOMGuardWebhookFailedOpen", []),
            ("5m", "OOMGuardWebhookFailedOpen", [({"name": ours["name"]}, "13")]),
            ("16m", "OOMGuardWebhookFailedOpen", []),
        ],
    )


def test_failed_open_alert_only_where_the_webhook_can_fail_open(helm_home: Path) -> None:
    """failurePolicy Fail refuses an unanswered review: nothing can fail open to alert on."""

    def alerts(policy: str) -> set[str]:
        objects = render(
            helm_home,
            [VALUES_DIR / "monitoring.yaml"],
            [f"evictionWebhook.failurePolicy={policy}"],
            namespace=NAMESPACE,
        )
        groups = one(objects, "PrometheusRule")["spec"]["groups"]
        return {r["alert"] for g in groups for r in g["rules"] if "alert" in r}

    assert "OOMGuardWebhookFailedOpen" in alerts("Ignore")
    assert "OOMGuardWebhookFailedOpen" not in alerts("Fail")


def test_fast_webhook_stays_silent(rules, tmp_path) -> None:
    fast = {"namespace": NAMESPACE, "pod": "oomguard-operator-y", "job": OPERATOR_JOB}
    _run(rules, tmp_path, _buckets(fast, slow=False), [("15m", "OOMGuardWebhookSlow", [])])


def test_every_alert_has_a_runbook_page_and_every_page_an_alert(rules) -> None:
    alerts = {r["alert"] for r in rules if "alert" in r}
    assert len(alerts) == 17
    for rule in rules:
        url = rule["annotations"]["runbook_url"]
        assert url == (
            f"https://github.com/oomguard/oomguard/blob/main/docs/runbooks/{rule['alert']}.md"
        )
        page = (RUNBOOKS / f"{rule['alert']}.md").read_text()
        assert page.startswith(f"# {rule['alert']}\n")
        for section in ("## Meaning", "## Impact", "## Diagnosis", "## Mitigation"):
            assert section in page, (rule["alert"], section)
        assert f"Severity: {rule['labels']['severity']}." in page
    pages = {p.stem for p in RUNBOOKS.glob("*.md")} - {"README"}
    assert pages == alerts


def test_default_rules_can_be_disabled_and_extended(helm_home: Path, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "monitoring": {
                    "prometheusRule": {
                        "enabled": True,
                        "disabled": {"OOMGuardPolicyConflict": True, "OOMGuardAgentMissing": True},
                        "additionalRules": [
                            {
                                "alert": "MyNodeTight",
                                "expr": "oomguard_memory_working_set_bytes > 1",
                                "labels": {"severity": "info"},
                            }
                        ],
                        "runbookBaseUrl": "https://runbooks.example.com/oomguard/",
                    }
                }
            }
        )
    )
    objects = render(helm_home, [values], namespace=NAMESPACE)
    groups = one(objects, "PrometheusRule")["spec"]["groups"]
    names = [r.get("alert") for g in groups for r in g["rules"]]
    assert "OOMGuardPolicyConflict" not in names and "OOMGuardAgentMissing" not in names
    assert "OOMGuardKernelOOMKill" in names
    assert groups[-1] == {
        "name": "oomguard.additional",
        "rules": [
            {
                "alert": "MyNodeTight",
                "expr": "oomguard_memory_working_set_bytes > 1",
                "labels": {"severity": "info"},
            }
        ],
    }
    urls = {r["annotations"]["runbook_url"] for g in groups[:-1] for r in g["rules"]}
    assert "https://runbooks.example.com/oomguard/OOMGuardKernelOOMKill.md" in urls
    rule_file = tmp_path / "rules.yaml"
    rule_file.write_text(yaml.safe_dump({"groups": groups}))
    check = subprocess.run(
        [_promtool(), "check", "rules", str(rule_file)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"disabled": {"OOMGuardNoSuchAlert": True}}, "OOMGuardNoSuchAlert"),
        ({"additionalRules": [{"alert": "X"}]}, "expr"),
        ({"runbookBaseUrl": "docs/runbooks"}, "runbookBaseUrl"),
        ({"nodeInfoMatchers": 'os_image!~"W.*"}'}, "nodeInfoMatchers"),
    ],
)
def test_bad_rule_values_are_refused(helm_home, tmp_path, values, needle) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump({"monitoring": {"prometheusRule": {"enabled": True, **values}}}))
    result = run_helm(template_args([path]), home=helm_home)
    assert result.returncode != 0
    assert needle in result.output, result.output
