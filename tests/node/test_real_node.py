"""The chart as it ships, guarding real pods on a real node (kubelet, containerd 2.x, runc,
CNI, kube-proxy) inside the real-kernel VM.

The tests run in file order against one node and one release (``conftest.py``): install,
a storm the agent must stop newest-first, a live upgrade, an uninstall that restores
kubepods, and the same storm with the chart gone (the control: the kernel OOM-kills).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chart_release import (
    CHART,
    KUBEPODS,
    MI,
    NAMESPACE,
    RELEASE,
    UPGRADED_RESERVE_MI,
    agent_logs,
    describe,
    helm,
    image_values,
    kubepods_high,
    kubepods_max,
    node_memory_bytes,
    operator_logs,
    pods_ready,
    reserve_values,
)
from conftest import RESERVE_MI, Release
from k8s_helpers import wait_for
from kubernetes.client import CustomObjectsApi
from kubernetes.client.exceptions import ApiException
from node_bed import NODE_NAME, Node, progress
from prometheus_scrape import scraping_the_agent
from storm_runs import StormBed, pressure_tainted, run_unguarded_storm
from storm_verdict import assert_storm_stopped_newest_first

pytestmark = [pytest.mark.kernel(memory="7G"), pytest.mark.node, pytest.mark.timeout(2400)]


def reserve_status(node: Node) -> dict[str, Any] | None:
    """The node's NodeMemoryReserve once its agent reports Enforcing=True."""
    custom = CustomObjectsApi(node.cp.api_client)
    try:
        obj = custom.get_cluster_custom_object(
            "oomguard.io", "v1alpha1", "nodememoryreserves", NODE_NAME
        )
    except ApiException:
        return None
    status = obj.get("status") or {}
    conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
    return obj if conditions.get("Enforcing") == "True" else None


def reserve_object(node: Node) -> dict[str, Any] | str:
    """The node's NodeMemoryReserve as it is, or why it cannot be read (for failure reports)."""
    try:
        return dict(
            CustomObjectsApi(node.cp.api_client).get_cluster_custom_object(
                "oomguard.io", "v1alpha1", "nodememoryreserves", NODE_NAME
            )
        )
    except ApiException as exc:
        return f"NodeMemoryReserve/{NODE_NAME}: {exc.status} {exc.reason}"


def enforcement_report(release: Release) -> str:
    """What to read when the reserve is not enforced: the object, kubepods, the agent's log."""
    return (
        f"NodeMemoryReserve: {json.dumps(reserve_object(release.node), default=str)[:4000]}\n"
        f"kubepods memory.high {kubepods_high()}, memory.max {kubepods_max()}\n"
        f"{agent_logs(release.core)}\n{operator_logs(release.core)}"
    )


def test_install_runs_the_agent_and_guards_the_kubelets_kubepods(release: Release) -> None:
    node, core = release.node, release.core
    for component in ("agent", "operator"):
        selector = f"app.kubernetes.io/component={component}"
        try:
            wait_for(
                f"the {component} pod Running and Ready",
                lambda s=selector: pods_ready(core, s),
                timeout=600,
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{describe(core, selector)}") from None
    capacity = node_memory_bytes(core)
    try:
        reserve = wait_for(
            "the node's reserve applied by the agent",
            lambda: (
                r
                if (r := reserve_status(node))
                and r["status"].get("memoryHighBytes") == capacity - RESERVE_MI * MI
                else None
            ),
            timeout=600,
        )
    except AssertionError as exc:
        report = enforcement_report(release)
        raise AssertionError(f"{exc} (node capacity {capacity})\n{report}") from None
    assert reserve["spec"]["reserveBytes"] == RESERVE_MI * MI
    assert kubepods_high() == str(capacity - RESERVE_MI * MI)
    assert int(kubepods_high()) < kubepods_max(), "the guard's line must sit below the kernel's"


# -- the storm -----------------------------------------------------------------------------


def storm_bed(release: Release) -> StormBed:
    return StormBed(release.node, release.core, KUBEPODS)


@pytest.fixture
def prometheus(release: Release, tmp_path: Path) -> Iterator[str]:
    with scraping_the_agent(release.node.cp.api_client, tmp_path) as api:
        yield api


def oom_score_adj(match: str) -> list[int]:
    """``oom_score_adj`` of every process whose command line contains ``match``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if match in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                found.append(int((proc / "oom_score_adj").read_text()))
        except (OSError, ValueError):
            continue
    return found


def test_the_agent_is_not_the_kernels_first_victim(release: Release) -> None:
    """Inside kubepods, under the memory.high it sets: the storm's BestEffort pods (1000)
    must rank before it in the kernel's OOM choice."""
    wait_for("the node's reserve enforced", lambda: reserve_status(release.node), timeout=300)
    scores = oom_score_adj("oomguard monitor")
    progress(f"agent oom_score_adj: {scores}")
    assert scores and max(scores) < 1000


def test_storm_is_stopped_newest_first_and_the_oldest_pods_complete(
    release: Release, prometheus: str
) -> None:
    try:
        wait_for("the node's reserve enforced", lambda: reserve_status(release.node), timeout=300)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{enforcement_report(release)}") from None
    assert_storm_stopped_newest_first(storm_bed(release), prometheus)


def test_upgrade_applies_a_new_reserve_live(release: Release) -> None:
    capacity = node_memory_bytes(release.core)
    result = helm(
        release.node, "upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values",
        *image_values(), *reserve_values(UPGRADED_RESERVE_MI),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    expected = str(capacity - UPGRADED_RESERVE_MI * MI)
    wait_for(
        "kubepods memory.high at the new reserve", lambda: kubepods_high() == expected, timeout=300
    )


def test_uninstall_restores_kubepods(release: Release) -> None:
    result = helm(release.node, "uninstall", RELEASE, "-n", NAMESPACE, "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    wait_for(
        "kubepods memory.high as before the install",
        lambda: kubepods_high() == release.high_before,
        timeout=300,
    )
    assert not pressure_tainted(release.core), "uninstall left the memory-pressure taint"


def test_without_the_guard_the_same_storm_gets_kernel_oom_kills(release: Release) -> None:
    """The control, once the chart is gone (the test before uninstalled it): the same storm
    passes kubepods memory.max and the kernel OOM-kills. Its pods start all at once: with no
    guard their age order matters to no one, and staggered starts on an emulated CPU would
    only add minutes to the same outcome."""
    assert kubepods_high() == release.high_before, "kubepods still carries a guard's line"
    killed, evicted = run_unguarded_storm(storm_bed(release), "storm-unguarded")
    assert not evicted, f"something evicted {sorted(evicted)} with no guard installed"
    assert killed, "the storm passed kubepods memory.max without a kernel OOM kill"
