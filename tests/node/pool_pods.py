"""The sidecar example pod of the chart's README, sized for the node bed, as plain data.

The ``app`` container runs a pool: its main process forks ``WORKERS`` workers one second
apart, each growing to ``SIZE_MIB`` of touched memory and holding it for ``HOLD_SECONDS``.
Once every worker has ended, the main process writes how each ended (``{"0": "exit 0",
"5": "signal 15", ...}``) to its termination message, where the apiserver shows it, and
exits 0: the main process living to tell is itself part of the result.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

POOL = """
import json, os, signal, sys, time
workers, size = int(os.environ["WORKERS"]), int(os.environ["SIZE_MIB"])
hold = float(os.environ["HOLD_SECONDS"])
pids = {}
for i in range(workers):
    pid = os.fork()
    if pid == 0:
        held = []
        while len(held) * 16 < size:
            held.append(bytearray(b"\\x01") * (16 << 20))
            time.sleep(0.1)
        time.sleep(hold)
        os._exit(0)
    pids[pid] = i
    print(f"worker {i} started", flush=True)
    time.sleep(1)
ended = {}
while pids:
    pid, status = os.wait()
    i = pids.pop(pid)
    ended[str(i)] = (f"exit {os.WEXITSTATUS(status)}" if os.WIFEXITED(status)
                     else f"signal {os.WTERMSIG(status)}")
    print(f"worker {i}: {ended[str(i)]}", flush=True)
with open("/dev/termination-log", "w") as f:
    json.dump(ended, f)
"""

APP_LIMIT_MI = 400
SIDECAR_RESERVE_MI = 100
WORKERS = 6
WORKER_MIB = 80


def pool_pod(
    name: str, *, python_image: str, sidecar_image: str | None, debug: bool = False
) -> dict[str, Any]:
    """The README's sidecar example (``sidecar_image``), or the same pool alone (None);
    ``debug``: the sidecar logs at debug level (every trigger and step)."""
    containers: list[dict[str, Any]] = [
        {
            "name": "app",
            "image": python_image,
            "imagePullPolicy": "Never",
            "command": ["python3", "-c", POOL],
            "env": [
                {"name": "WORKERS", "value": str(WORKERS)},
                {"name": "SIZE_MIB", "value": str(WORKER_MIB)},
                {"name": "HOLD_SECONDS", "value": "20"},
            ],
            "resources": {"limits": {"memory": f"{APP_LIMIT_MI}Mi"}},
        }
    ]
    init_containers: list[dict[str, Any]] = []
    if sidecar_image is not None:
        init_containers.append(
            {
                "name": "oomguard",
                "image": sidecar_image,
                "imagePullPolicy": "Never",
                # a native sidecar: started, and its startupProbe passed, before the app
                "restartPolicy": "Always",
                "args": [
                    "monitor",
                    "--mode=sidecar",
                    "--cgroup-root=/host/sys/fs/cgroup",
                    "--http-port=9610",
                    f"--reserve={SIDECAR_RESERVE_MI}Mi",
                    *(["--log-level=debug"] if debug else []),
                ],
                "env": [
                    {
                        "name": "POD_UID",
                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}},
                    }
                ],
                "ports": [{"name": "http", "containerPort": 9610}],
                "startupProbe": {
                    "httpGet": {"path": "/healthz", "port": "http"},
                    "periodSeconds": 2,
                    "failureThreshold": 150,
                },
                "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}},
                "resources": {
                    "requests": {"cpu": "10m", "memory": "48Mi"},
                    "limits": {"memory": "96Mi"},
                },
                # root (the image's user is not) in the host's cgroup namespace, so it may
                # move the app's processes where cgroup2 is mounted nsdelegate (containerd
                # gives that namespace only to privileged containers)
                "securityContext": {"privileged": True, "runAsUser": 0},
                "volumeMounts": [{"name": "cgroup", "mountPath": "/host/sys/fs/cgroup"}],
            }
        )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "shareProcessNamespace": True,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "initContainers": init_containers,
            "containers": containers,
            "volumes": [
                {"name": "cgroup", "hostPath": {"path": "/sys/fs/cgroup", "type": "Directory"}}
            ],
        },
    }


def app_result(pod: Mapping[str, Any]) -> tuple[str, dict[str, str] | None]:
    """The app container's end: its termination reason, and the pool's report if the main
    process lived to write it."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") != "app":
            continue
        terminated = (status.get("state") or {}).get("terminated")
        if not terminated:
            return "running", None
        reason = str(terminated.get("reason") or "")
        try:
            report = json.loads(terminated.get("message") or "")
        except ValueError:
            return reason, None
        return reason, report if isinstance(report, dict) else None
    return "waiting", None
