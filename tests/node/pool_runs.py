"""The sidecar example pod run on a node bed, either cgroup driver: how it ended, what its
cgroups went through, what its sidecar logged; and what a guarded run must show."""

from __future__ import annotations

import threading
import time
from pathlib import Path, PurePosixPath
from typing import Any

from k8s_helpers import create_namespace, wait_for
from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException
from node_bed import OOMGUARD_IMAGE, PYTHON_IMAGE
from pool_pods import app_result, pool_pod

from oomguard.monitor.kube.pod_cgroups import (
    CgroupDriver,
    KubepodsLocation,
    QosClass,
    pod_cgroup_path,
)

NAMESPACE = "pool"


KUBEPODS = {  # where each driver's kubelet puts kubepods (the node bed's kubelet config)
    CgroupDriver.CGROUPFS: KubepodsLocation(CgroupDriver.CGROUPFS, PurePosixPath("kubepods")),
    CgroupDriver.SYSTEMD: KubepodsLocation(CgroupDriver.SYSTEMD, PurePosixPath("kubepods.slice")),
}


def pod_cgroup(cgroup_root: Path, uid: str, driver: CgroupDriver) -> Path:
    """The pool pod's cgroup (Burstable: its containers have limits, no requests), under
    the node's hierarchy as the guest sees it (``Node.cgroup_root``)."""
    return cgroup_root / pod_cgroup_path(uid, QosClass.BURSTABLE, KUBEPODS[driver])


def oom_kills(pod: Path) -> int | None:
    """The pod cgroup's ``oom_kill`` (its descendants' included); None once it is gone."""
    try:
        text = (pod / "memory.events").read_text()
    except FileNotFoundError:
        return None
    return int(dict(line.split() for line in text.splitlines())["oom_kill"])


def run_pool(
    core: CoreV1Api,
    name: str,
    sidecar: bool,
    cgroup_root: Path = Path("/sys/fs/cgroup"),
    driver: CgroupDriver = CgroupDriver.CGROUPFS,
) -> tuple[str, dict[str, str] | None, int, str]:
    """Start the pool pod; once its app container has ended: its reason, the pool's report,
    the pod cgroup's ``oom_kill`` and the sidecar's log (empty without one).

    ``oom_kill`` is the pod cgroup's last value: read at the end, or, when the kubelet has
    removed the cgroup of the finished pod by then, the last the sampler saw (a kernel OOM
    kill ends a process, and the pod ends seconds after its last process)."""
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
    pod_dir = pod_cgroup(cgroup_root, created.metadata.uid, driver)
    samples = CgroupSampler(pod_dir)
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
    at_end = oom_kills(pod_dir)
    kills = at_end if at_end is not None else samples.pod_oom_kill
    assert kills is not None, f"the pod's cgroup {pod_dir} was never seen"
    print(f"{name}: app {reason}, workers {report}, pod oom_kill {kills}")
    log = sidecar_log(pod) if sidecar else ""
    print(log)
    return reason, report, kills, log


class CgroupSampler:
    """Every 0.25 s while the pool runs: memory.current (MiB) and the high/max/oom_kill
    counters of each cgroup under the pod, a row when any changed, so a failed run shows
    what the sidecar could have seen; and the pod cgroup's latest ``oom_kill``."""

    def __init__(self, pod: Path) -> None:
        self.pod = pod
        self.rows: list[str] = []
        self.pod_oom_kill: int | None = None  # None until the pod's cgroup was seen
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
            seen = oom_kills(self.pod)
            if seen is not None:
                self.pod_oom_kill = seen
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


def assert_newest_workers_stopped(
    reason: str, report: dict[str, str] | None, kills: int, log: str
) -> None:
    """The guarded pool's outcome: the main process lived, the newest workers were stopped
    and the oldest finished, and the kernel OOM-killed nothing in the pod."""
    assert reason == "Completed", f"the pool's main process did not live: {reason}"
    assert report is not None
    stopped = sorted(int(i) for i, end in report.items() if end != "exit 0")
    finished = sorted(int(i) for i, end in report.items() if end == "exit 0")
    assert stopped, f"nothing was stopped: {report}"
    assert finished and finished[0] == 0, f"the oldest worker did not finish: {report}"
    assert max(finished) < min(stopped), f"an older worker went before a newer one: {report}"
    assert kills == 0
    assert " ERROR " not in log, "the sidecar logged an error (the app's end is not one)"
