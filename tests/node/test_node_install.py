"""The chart as it ships, installed on a real node: kubelet, containerd 2.x, runc, CNI.

Runs inside the real-kernel VM (marker ``kernel``, with a node's worth of memory), where
``node_bed`` brings the node up once for the module. Values override only what the issue
allows: the image (built here by tests/node/images, imported into containerd, never pulled)
and the reserve.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from k8s_helpers import wait_for
from kubernetes.client import AppsV1Api, CoreV1Api, CustomObjectsApi
from node_bed import NODE_NAME, Node, running_node

# Bringing the node up under software emulation takes minutes: the whole budget, not 600 s.
pytestmark = [pytest.mark.kernel(memory="6G"), pytest.mark.node, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "oomguard"
HELM = REPO / "tests" / "cluster" / "cache" / "bin" / "helm"
NAMESPACE = "oomguard-system"
MI = 2**20
RESERVE_MI = 512


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    with running_node() as running:
        yield running


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


def install_values(reserve_mi: int) -> list[str]:
    return [
        "--set", "image.repository=localhost/oomguard",
        "--set", "image.tag=node-test",
        "--set", "image.pullPolicy=Never",
        "--set", f"defaultPolicy.reserve.absolute={reserve_mi}Mi",
    ]  # fmt: skip


def kubepods_high() -> str:
    return Path("/sys/fs/cgroup/kubepods/memory.high").read_text().strip()


def pods_ready(core: CoreV1Api, selector: str) -> list[Any] | None:
    """The pods when all are Running and Ready; fails at once, with the container's last
    words, when one keeps crashing (the chart sets FallbackToLogsOnError)."""
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
    for p in pods:
        for c in p.status.container_statuses or []:
            last = c.last_state.terminated if c.last_state else None
            if c.restart_count >= 2 and last is not None:
                raise AssertionError(
                    f"{p.metadata.name}/{c.name} keeps crashing (exit {last.exit_code}, "
                    f"{c.restart_count} restarts):\n{last.message}\n{container_logs(p)}"
                )
    ready = [
        p
        for p in pods
        if p.status.phase == "Running"
        and all(c.ready for c in p.status.container_statuses or [])
        and p.status.container_statuses
    ]
    return ready if ready and len(ready) == len(pods) else None


def container_logs(pod: Any, lines: int = 40) -> str:
    """The kubelet's log files of ``pod`` (the apiserver has no kubelet client certificate
    here, so ``kubectl logs`` cannot fetch them)."""
    out = []
    for log in sorted(Path("/var/log/pods").glob(f"{NAMESPACE}_{pod.metadata.name}_*/*/*.log")):
        text = log.read_text(errors="replace").splitlines()[-lines:]
        out.append(f"--- {log}\n" + "\n".join(text))
    return "\n".join(out)


def test_chart_installs_and_guards_the_real_kubepods(node: Node) -> None:
    core = CoreV1Api(node.cp.api_client)
    core.create_namespace(
        {
            "metadata": {
                "name": NAMESPACE,
                "labels": {"pod-security.kubernetes.io/enforce": "privileged"},
            }
        }
    )
    before = kubepods_high()
    result = helm(
        node, "install", "oomguard", str(CHART), "-n", NAMESPACE, *install_values(RESERVE_MI)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    try:
        wait_for(
            "the agent pod Running and Ready",
            lambda: pods_ready(core, "app.kubernetes.io/component=agent"),
            timeout=600,
        )
        wait_for(
            "the operator Deployment available",
            lambda: (
                (
                    d := AppsV1Api(node.cp.api_client).read_namespaced_deployment(
                        "oomguard-operator", NAMESPACE
                    )
                ).status.available_replicas
                == d.spec.replicas
            ),
            timeout=600,
        )
        custom = CustomObjectsApi(node.cp.api_client)
        capacity = node_memory_bytes(core)

        def applied() -> dict[str, Any] | None:
            try:
                obj = custom.get_cluster_custom_object(
                    "oomguard.io", "v1alpha1", "nodememoryreserves", NODE_NAME
                )
            except Exception:
                return None
            status = obj.get("status") or {}
            conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
            return obj if conditions.get("Enforcing") == "True" else None

        reserve = wait_for("the node's reserve applied by the agent", applied, timeout=600)
        assert reserve["spec"]["reserveBytes"] == RESERVE_MI * MI
        assert reserve["status"]["memoryHighBytes"] == capacity - RESERVE_MI * MI
        assert kubepods_high() == str(capacity - RESERVE_MI * MI)
    finally:
        print(node.log_tail("kubelet"))
    result = helm(node, "uninstall", "oomguard", "-n", NAMESPACE, "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    wait_for("kubepods memory.high restored", lambda: kubepods_high() == before, timeout=300)


def node_memory_bytes(core: CoreV1Api) -> int:
    from kubernetes.utils import parse_quantity

    return int(parse_quantity(core.read_node(NODE_NAME).status.capacity["memory"]))
