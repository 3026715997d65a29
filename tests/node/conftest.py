"""One node for the whole tier, and one release of the chart on it.

Bringing a node up under software emulation takes minutes, so the node (and the chart
installed on it) lives for the session; the tests in ``test_real_node.py`` run in file order
against it: install, storm, upgrade, uninstall, the control.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from chart_release import (
    CHART,
    NAMESPACE,
    RELEASE,
    helm,
    image_values,
    kubepods_high,
    node_values,
    reserve_values,
)
from kubernetes.client import CoreV1Api
from node_bed import Node, running_node

# The reserve: kubepods memory.high = node memory - RESERVE_MI sits below the kubelet's
# memory.max (node memory - SYSTEM_RESERVED_MI), so the guard acts before the kernel's OOM.
RESERVE_MI = 3072


@pytest.fixture(scope="session")
def node() -> Iterator[Node]:
    with running_node() as running:
        yield running


@dataclass(frozen=True)
class Release:
    node: Node
    core: CoreV1Api
    high_before: str  # kubepods memory.high before the install


@pytest.fixture(scope="session")
def release(node: Node) -> Iterator[Release]:
    """The chart installed as it ships (image, pull policy and reserve overridden)."""
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
        node, "install", RELEASE, str(CHART), "-n", NAMESPACE,
        *image_values(), *node_values(), *reserve_values(RESERVE_MI),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    try:
        yield Release(node, core, before)
    finally:
        print(node.log_tail("kubelet"))
        helm(node, "uninstall", RELEASE, "-n", NAMESPACE, "--wait")  # no-op once a test did
