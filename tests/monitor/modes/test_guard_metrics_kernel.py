"""`oomguard guard --metrics-port` on the real kernel (the VM): the endpoint carries the
kernel's own memory.events counters and limits, the guard's decisions and kills, and
Debian's promtool accepts what it serves."""

import http.client
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from monitor_fakes import free_port
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.kernel

MiB = 2**20
DEMO_WORKLOAD = str(Path(__file__).resolve().parents[3] / "demo" / "workload.py")  # by path
WORKLOAD = [sys.executable, DEMO_WORKLOAD, "--quiet"]
LIMITS = ["--memory-high", "220Mi", "--memory-max", "300Mi", "--grace", "1"]
# The event monitor alone: the threshold poller watches the same line and, when it wins the
# race to a breach, the decision is its, so trigger="event" series would depend on timing.
MONITORS = ["--monitors", "event"]


def samples(text):
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_guard_serves_kernel_counters_and_its_actions(tmp_path):
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(promtool).exists():
        pytest.fail("promtool is missing: install Debian's 'prometheus' package (scripts/setup)")
    port = free_port()
    results = tmp_path / "workers.json"
    guard = [sys.executable, "-m", "oomguard", "guard", *LIMITS, *MONITORS]
    argv = [*guard, "--metrics-port", str(port)]
    proc = subprocess.Popen(
        [*argv, "--", *WORKLOAD, "--results", str(results)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    scraped: list[str] = []  # every scrape, start-up to shut-down
    deadline = time.monotonic() + 240
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                url = f"http://127.0.0.1:{port}/metrics"
                with urllib.request.urlopen(url, timeout=2) as response:
                    scraped.append(response.read().decode())
            except (OSError, http.client.HTTPException):
                pass  # not listening yet, already gone, or gone while answering (exiting)
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
        log = proc.communicate(timeout=300)[0]
    # the pool exits 1 when some of its workers were stopped; 125 would be oomguard failing
    assert proc.returncode in (0, 1), log
    assert "command exited" in log, log
    assert len(scraped) > 3, log

    # The event monitor's health over the run: absent until it starts, 1 while it watches,
    # 0 once the guard stops it on the way out (a scrape can land in that last window).
    up_key = ("oomguard_monitor_up", (("monitor", "event"),))
    ups = [samples(text).get(up_key) for text in scraped]
    seen = "".join({None: "-", 1.0: "1", 0.0: "0"}[u] for u in ups)
    assert re.fullmatch(r"-*1+0*", seen), seen
    # the last scrape taken while the monitors still ran: the guard's final state, limits
    # not yet restored
    last = scraped[max(i for i, u in enumerate(ups) if u == 1)]

    check = subprocess.run(
        [promtool, "check", "metrics"], input=last, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr

    got = samples(last)

    def value(name, **labels):
        return got.get((name, tuple(sorted(labels.items()))))

    assert value("oomguard_memory_high_bytes") == 220 * MiB
    assert value("oomguard_memory_max_bytes") == 300 * MiB
    assert value("oomguard_memory_usage_bytes") > 0
    assert value("oomguard_memory_events_total", event="high") > 0, last
    assert value("oomguard_memory_events_total", event="oom_kill") == 0, last
    assert value("oomguard_decisions_total", trigger="event") >= 1, last
    assert value("oomguard_decisions_total", trigger="threshold") in (None, 0), last
    assert value("oomguard_victims_total") >= 1
    assert value("oomguard_actions_total", outcome="killed") >= 1, last
    assert value("oomguard_freed_bytes_total") > 0
    assert value("oomguard_detection_latency_seconds_count", trigger="event") >= 1
    assert value("oomguard_monitor_up", monitor="event") == 1
    build = [labels for (name, labels) in got if name == "oomguard_build_info"]
    assert dict(build[0])["mode"] == "guard"
    assert dict(build[0])["kernel"] == subprocess.check_output(["uname", "-r"], text=True).strip()
