"""Sidecar mode on the real node: the chart README's example pod, run by the kubelet with
containerd's defaults (a private cgroup namespace per container), against the same pool
without its sidecar.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from k8s_helpers import create_namespace, wait_for
from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException
from node_bed import OOMGUARD_IMAGE, PYTHON_IMAGE, Node
from pool_pods import app_result, pool_pod

pytestmark = [pytest.mark.kernel(memory="7G"), pytest.mark.node, pytest.mark.timeout(2400)]

NAMESPACE = "pool"


def pod_oom_kills(uid: str) -> int:
    """``oom_kill`` of the pod's cgroup (the kubelet's cgroupfs layout, Burstable class)."""
    events = Path(f"/sys/fs/cgroup/kubepods/burstable/pod{uid}/memory.events")
    fields = dict(line.split() for line in events.read_text().splitlines())
    return int(fields["oom_kill"])


def run_pool(
    core: CoreV1Api, name: str, sidecar: bool
) -> tuple[str, dict[str, str] | None, int, str]:
    """Start the pool pod; once its app container has ended: its reason, the pool's report,
    the pod cgroup's ``oom_kill`` and the sidecar's log (empty without one)."""
    try:
        create_namespace(core, NAMESPACE)
    except ApiException as exc:
        if exc.status != 409:
            raise
    manifest = pool_pod(
        name,
        python_image=PYTHON_IMAGE,
        sidecar_image=OOMGUARD_IMAGE if sidecar else None,
        debug=sidecar,
    )
    created = core.create_namespaced_pod(NAMESPACE, manifest)
    samples = CgroupSampler(Path(f"/sys/fs/cgroup/kubepods/burstable/pod{created.metadata.uid}"))
    samples.start()
    api = core.api_client

    def ended() -> tuple[str, dict[str, str] | None, dict[str, Any]] | None:
        pod = api.sanitize_for_serialization(core.read_namespaced_pod(name, NAMESPACE))
        reason, report = app_result(pod)
        return (reason, report, pod) if reason not in ("running", "waiting") else None

    try:
        reason, report, pod = wait_for(
            f"{name}'s app container ended", ended, timeout=900, interval=2
        )
    finally:
        samples.stop()
    print(samples.table())
    kills = pod_oom_kills(created.metadata.uid)
    print(f"{name}: app {reason}, workers {report}, pod oom_kill {kills}")
    log = sidecar_log(pod) if sidecar else ""
    print(log)
    return reason, report, kills, log


class CgroupSampler:
    """Every 0.25 s while the pool runs: memory.current (MiB) and the high/max/oom_kill
    counters of each cgroup under the pod, a row when any changed, so a failed run shows
    what the sidecar could have seen."""

    def __init__(self, pod: Path) -> None:
        self.pod = pod
        self.rows: list[str] = []
        self._last = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(0.25):
            cells = []
            for events in sorted(self.pod.glob("**/memory.events")):
                try:
                    fields = dict(line.split() for line in events.read_text().splitlines())
                    current = int((events.parent / "memory.current").read_text()) >> 20
                except (OSError, ValueError):
                    continue
                name = str(events.parent.relative_to(self.pod))[-20:]
                cells.append(
                    f"{name}={current}M h{fields['high']} m{fields['max']} k{fields['oom_kill']}"
                )
            row = " | ".join(cells)
            if row != self._last:  # a row per change: the whole run fits in the output
                self.rows.append(f"{time.monotonic() - started:6.2f} {row}")
                self._last = row

    def table(self) -> str:
        return "\n".join(self.rows[-400:])


def sidecar_log(pod: dict[str, Any]) -> str:
    meta = pod["metadata"]
    logs = Path("/var/log/pods").glob(f"{meta['namespace']}_{meta['name']}_*/oomguard/*.log")
    return "\n".join(p.read_text(errors="replace")[-30000:] for p in sorted(logs))


def cgroup2_options() -> list[str]:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" - ")
        if len(fields) == 2 and fields[1].split()[0] == "cgroup2":
            return fields[1].split()[2].split(",")
    return []


def test_sidecar_stops_the_newest_workers_and_the_pod_is_never_oom_killed(node: Node) -> None:
    """As a native sidecar, privileged, on a node whose cgroup2 is mounted nsdelegate as
    systemd mounts it."""
    assert "nsdelegate" in cgroup2_options(), "the node bed must mount cgroup2 as systemd does"
    core = CoreV1Api(node.cp.api_client)
    reason, report, kills, log = run_pool(core, "pool-guarded", sidecar=True)
    assert reason == "Completed", f"the pool's main process did not live: {reason}"
    assert report is not None
    stopped = sorted(int(i) for i, end in report.items() if end != "exit 0")
    finished = sorted(int(i) for i, end in report.items() if end == "exit 0")
    assert stopped, f"nothing was stopped: {report}"
    assert finished and finished[0] == 0, f"the oldest worker did not finish: {report}"
    assert max(finished) < min(stopped), f"an older worker went before a newer one: {report}"
    assert kills == 0
    assert " ERROR " not in log, "the sidecar logged an error (the app's end is not one)"


def test_without_its_sidecar_the_same_pool_is_oom_killed(node: Node) -> None:
    core = CoreV1Api(node.cp.api_client)
    reason, report, kills, _ = run_pool(core, "pool-unguarded", sidecar=False)
    assert kills > 0, f"the kernel did not OOM-kill: app {reason}, workers {report}"
