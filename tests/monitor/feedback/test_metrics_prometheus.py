"""The /metrics endpoint against the real tools: Debian's promtool and a real Prometheus.

The endpoint is the agent's own HttpEndpoints server with GuardMetrics on a fake cgroup
directory (the host has no cgroup v2 memory controller; the values are the kernel's
format either way). These tests fail, never skip, when promtool or prometheus is missing:
scripts/setup installs Debian's ``prometheus`` package.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from oomguard.monitor.feedback.http_endpoints import HttpEndpoints
from oomguard.monitor.feedback.metrics_registry import GuardMetrics
from oomguard.monitor.triggers.trigger import Trigger, TriggerKind

pytestmark = pytest.mark.prometheus

EVENTS = "low 0\nhigh 57\nmax 2\noom 0\noom_kill 0\noom_group_kill 0\n"


def tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        pytest.fail(f"{name} is missing: install Debian's 'prometheus' package (scripts/setup)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
        return body


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[tuple[str, GuardMetrics]]:
    cgroup = tmp_path / "guarded"
    cgroup.mkdir()
    (cgroup / "memory.events").write_text(EVENTS)
    (cgroup / "memory.high").write_text("805306368\n")
    (cgroup / "memory.max").write_text("max\n")
    (cgroup / "memory.current").write_text("734003200\n")
    (cgroup / "memory.stat").write_text("anon 700000000\ninactive_file 4003200\n")
    metrics = GuardMetrics("guard", cgroup, kernel_release="6.1.0-test")
    metrics.set_monitor_up("event", True)
    metrics.set_monitor_up("threshold", True)
    metrics.record_decision(Trigger(TriggerKind.EVENT, detected_at=10.0), 2, decided_at=10.003)
    metrics.record_action("evicted", bytes_freed=300 << 20, latency_seconds=0.4)
    metrics.record_action("blocked-by-pdb", latency_seconds=0.02)
    metrics.record_action("exited", bytes_freed=100 << 20, latency_seconds=0.05)
    server = HttpEndpoints("127.0.0.1", 0)
    server.add_check("/healthz", lambda: (True, "ok"))
    server.add_route("/metrics", metrics.route)
    server.start()
    try:
        yield f"127.0.0.1:{server.port}", metrics
    finally:
        server.stop()


def test_endpoint_serves_the_text_format(endpoint: tuple[str, GuardMetrics]) -> None:
    address, _ = endpoint
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=30) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        body = response.read().decode()
    assert 'oomguard_memory_events_total{event="high"} 57.0' in body
    assert get(f"http://{address}/healthz") == b"ok\n"


def test_promtool_check_metrics_passes(endpoint: tuple[str, GuardMetrics]) -> None:
    address, _ = endpoint
    body = get(f"http://{address}/metrics")
    result = subprocess.run(
        [tool("promtool"), "check", "metrics"], input=body, capture_output=True, timeout=60
    )
    problems = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, problems
    assert problems.strip() == ""


def query(api: str, promql: str) -> list[dict]:
    url = f"{api}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    answer = json.loads(get(url))
    assert answer["status"] == "success", answer
    result: list[dict] = answer["data"]["result"]
    return result


def wait_for(api: str, promql: str, timeout: float = 60.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        result = query(api, promql)
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


@pytest.fixture
def prometheus(tmp_path: Path, endpoint: tuple[str, GuardMetrics]) -> Iterator[str]:
    """A real Prometheus of our own (never the system one on :9090) scraping the endpoint."""
    binary = tool("prometheus")
    address, _ = endpoint
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 1s\n"
        "scrape_configs:\n"
        "  - job_name: oomguard\n"
        "    static_configs:\n"
        f"      - targets: ['{address}']\n"
        "        labels: {node: test-node}\n"
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"prometheus exited with {process.returncode}:\n"
                    + (tmp_path / "prometheus.log").read_text()
                )
            try:
                if get(f"{api}/-/ready", timeout=1) is not None:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("prometheus did not become ready in 60 s")
            time.sleep(0.2)
        yield api
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_real_prometheus_scrapes_the_series(
    prometheus: str, endpoint: tuple[str, GuardMetrics]
) -> None:
    api = prometheus
    _, metrics = endpoint
    up = wait_for(api, 'up{job="oomguard"} == 1')
    assert up, "the oomguard target never came up"
    assert up[0]["metric"]["node"] == "test-node"  # node identity from the target's labels

    info = wait_for(api, "oomguard_build_info")
    assert len(info) == 1
    labels = info[0]["metric"]
    assert (labels["mode"], labels["kernel"]) == ("guard", "6.1.0-test")

    high = wait_for(api, 'oomguard_memory_events_total{event="high"}')
    assert [float(r["value"][1]) for r in high] == [57.0]
    events = {r["metric"]["event"] for r in query(api, "oomguard_memory_events_total")}
    assert events == {"low", "high", "max", "oom", "oom_kill", "oom_group_kill"}

    def scalar(promql: str) -> float:
        result = wait_for(api, promql)
        assert len(result) == 1, (promql, result)
        return float(result[0]["value"][1])

    assert scalar("oomguard_memory_high_bytes") == 805306368
    assert scalar("oomguard_memory_working_set_bytes") == 734003200 - 4003200
    assert scalar('oomguard_actions_total{outcome="pdb_blocked"}') == 1
    assert scalar("oomguard_freed_bytes_total") == 400 << 20
    assert scalar("sum(oomguard_monitor_up)") == 2
    assert scalar(
        "histogram_quantile(0.5, sum by (le) (oomguard_detection_latency_seconds_bucket))"
    )

    # Values are read at scrape time: a change in the kernel's counter shows on a later scrape.
    cgroup = metrics.cgroup_collector.cgroup
    assert cgroup is not None
    (cgroup.path / "memory.events").write_text(EVENTS.replace("high 57", "high 90"))
    deadline = time.monotonic() + 30
    while scalar('oomguard_memory_events_total{event="high"}') != 90:
        assert time.monotonic() < deadline, "the new memory.events value was never scraped"
        time.sleep(0.5)

    targets = json.loads(get(f"{api}/api/v1/targets"))["data"]["activeTargets"]
    assert [(t["health"], t["lastError"]) for t in targets] == [("up", "")]
