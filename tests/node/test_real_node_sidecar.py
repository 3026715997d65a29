"""Sidecar mode on the real node: the chart README's example pod, run by the kubelet with
containerd's defaults (a private cgroup namespace per container), against the same pool
without its sidecar. (The systemd bed runs the guarded pool too, on the other driver.)
"""

from __future__ import annotations

import pytest
from kubernetes.client import CoreV1Api
from node_bed import Node
from pool_runs import assert_newest_workers_stopped, cgroup2_options, run_pool

pytestmark = [pytest.mark.kernel(memory="7G"), pytest.mark.node, pytest.mark.timeout(2400)]


def test_sidecar_stops_the_newest_workers_and_the_pod_is_never_oom_killed(node: Node) -> None:
    """As a native sidecar, privileged, on a node whose cgroup2 is mounted nsdelegate as
    systemd mounts it."""
    assert "nsdelegate" in cgroup2_options(), "the node bed must mount cgroup2 as systemd does"
    core = CoreV1Api(node.cp.api_client)
    assert_newest_workers_stopped(*run_pool(core, "pool-guarded", sidecar=True))


def test_without_its_sidecar_the_same_pool_is_oom_killed(node: Node) -> None:
    core = CoreV1Api(node.cp.api_client)
    reason, report, kills, _ = run_pool(core, "pool-unguarded", sidecar=False)
    assert kills > 0, f"the kernel did not OOM-kill: app {reason}, workers {report}"
