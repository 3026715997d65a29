"""The chart on the node bed: helm, the release's pods, and the files it guards.

Values override only what the real-node issue allows: the image (built here by
tests/node/images and imported into containerd, never pulled), the reserve, and the dry run;
and the kubelet's cgroup driver, which every user whose kubelet runs cgroupfs sets too (the
chart mounts only that driver's kubepods writable).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from kubernetes.client import CoreV1Api
from node_bed import NODE_NAME, Node

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "oomguard"
HELM = REPO / "tests" / "cluster" / "cache" / "bin" / "helm"
NAMESPACE = "oomguard-system"
RELEASE = "oomguard"
KUBEPODS = Path("/sys/fs/cgroup/kubepods")
MI = 2**20


def helm(node: Node, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    home = node.workdir / "helm-home"
    home.mkdir(exist_ok=True)
    env = {
        **node.cp.env(),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_DATA_HOME": str(home / "data"),
        "HELM_NO_PLUGINS": "1",
    }
    return subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def image_values() -> list[str]:
    return [
        "--set", "image.repository=localhost/oomguard",
        "--set", "image.tag=node-test",
        "--set", "image.pullPolicy=Never",
    ]  # fmt: skip


def node_values() -> list[str]:
    """The bed's kubelet runs the cgroupfs driver (node_bed.kubelet_config): kubepods."""
    return ["--set", "agent.cgroupDriver=cgroupfs"]


# A second reserve for `helm upgrade`: its line (node memory - this) is 256 MiB above the
# first's and still below the kubelet's memory.max (node memory - SYSTEM_RESERVED_MI) less
# the agent's margin.
UPGRADED_RESERVE_MI = 2816


def reserve_values(reserve_mi: int) -> list[str]:
    return ["--set", f"defaultPolicy.reserve.absolute={reserve_mi}Mi"]


def kubepods_high(kubepods: Path = KUBEPODS) -> str:
    return (kubepods / "memory.high").read_text().strip()


def kubepods_max(kubepods: Path = KUBEPODS) -> int:
    return int((kubepods / "memory.max").read_text().strip())


def kubepods_current(kubepods: Path = KUBEPODS) -> int:
    return int((kubepods / "memory.current").read_text().strip())


def kubepods_event(key: str, kubepods: Path = KUBEPODS) -> int:
    for line in (kubepods / "memory.events").read_text().splitlines():
        name, value = line.split()
        if name == key:
            return int(value)
    raise AssertionError(f"no {key} in kubepods memory.events")


def node_memory_bytes(core: CoreV1Api) -> int:
    from kubernetes.utils import parse_quantity

    return int(parse_quantity(core.read_node(NODE_NAME).status.capacity["memory"]))


def pods_ready(core: CoreV1Api, selector: str) -> list[Any] | None:
    """The pods when all are Running and Ready; fails at once, with the container's last
    words, when one keeps crashing (the chart sets FallbackToLogsOnError)."""
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
    for p in pods:
        for c in p.status.container_statuses or []:
            last = c.last_state.terminated if c.last_state else None
            if c.restart_count >= 2 and last is not None:
                raise AssertionError(
                    f"{p.metadata.name}/{c.name} keeps crashing ({last.reason}, exit "
                    f"{last.exit_code}, "
                    f"{c.restart_count} restarts):\n{last.message}\n{container_logs(p)}"
                )
    ready = [
        p
        for p in pods
        if p.status.phase == "Running"
        and p.metadata.deletion_timestamp is None
        and p.status.container_statuses
        and all(c.ready for c in p.status.container_statuses)
    ]
    return ready if ready and len(ready) == len(pods) else None


def container_logs(pod: Any, lines: int = 40) -> str:
    """The kubelet's log files of ``pod`` (the apiserver has no kubelet client certificate
    here, so ``kubectl logs`` cannot fetch them)."""
    out = []
    namespace = pod.metadata.namespace
    for log in sorted(Path("/var/log/pods").glob(f"{namespace}_{pod.metadata.name}_*/*/*.log")):
        text = log.read_text(errors="replace").splitlines()[-lines:]
        out.append(f"--- {log}\n" + "\n".join(text))
    return "\n".join(out)


def describe(core: CoreV1Api, selector: str) -> str:
    """What a stuck component's pods say: phase, conditions, container states, their logs,
    and the namespace's recent Events (scheduling, probes, kills)."""
    out = []
    for p in core.list_namespaced_pod(NAMESPACE, label_selector=selector).items:
        status = core.api_client.sanitize_for_serialization(p.status)
        out.append(f"--- pod {p.metadata.name}: {status}")
        out.append(container_logs(p))
    for e in core.list_namespaced_event(NAMESPACE).items[-30:]:
        out.append(f"event {e.involved_object.name}: {e.reason}: {e.message}")
    return "\n".join(out)


def component_logs(core: CoreV1Api, component: str, lines: int = 60) -> str:
    pods = core.list_namespaced_pod(
        NAMESPACE, label_selector=f"app.kubernetes.io/component={component}"
    ).items
    return "\n".join(container_logs(p, lines) for p in pods)


def agent_logs(core: CoreV1Api, lines: int = 60) -> str:
    return component_logs(core, "agent", lines)


def operator_logs(core: CoreV1Api, lines: int = 60) -> str:
    return component_logs(core, "operator", lines)
