"""Which OOM series move on the real kernel (the VM): the critical alert's series must stay
still when a container hits its own memory.max, and move when the guarded cgroup itself
(kubepods) is the OOM domain.

The alert reads ``oomguard_memory_events_local_total{event="oom"}`` (memory.events.local of
kubepods: ``oom`` is recorded at the cgroup whose limit was hit). ``memory.events``
``oom_kill`` (subtree) and ``/proc/vmstat`` ``oom_kill`` (machine) move in both cases: they
stay informational series.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from oomguard.monitor.feedback.cgroup_collector import CgroupCollector
from oomguard.monitor.kernel.cgroupfs import Cgroup

pytestmark = pytest.mark.kernel

MiB = 2**20


def series(collector: CgroupCollector) -> dict[tuple[str, str], float]:
    """(metric, event label) -> value, through a real registry as Prometheus scrapes it."""
    registry = CollectorRegistry()
    registry.register(collector)
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            out[(sample.name, sample.labels.get("event", ""))] = sample.value
    return out


ALERTING = ("oomguard_memory_events_local_total", "oom")
SUBTREE_KILLS = ("oomguard_memory_events_total", "oom_kill")
NODE_KILLS = ("oomguard_node_oom_kills_total", "")


def _no_swap(cgroup: Cgroup) -> None:
    """The hog must hit the limit, not swap around it."""
    if cgroup.file("memory.swap.max").exists():
        cgroup.write("memory.swap.max", b"0")


def _oom_killed(hog) -> None:
    """Wait (bounded) for the hog to die, and check the OOM killer was the one (SIGKILL)."""
    assert hog.process.wait(timeout=120) == -9


def test_container_oom_leaves_the_alerting_series_and_kubepods_oom_moves_it(
    real_cgroup: Cgroup, spawn_hog
) -> None:
    kubepods = real_cgroup
    kubepods.enable_memory_for_children()
    _no_swap(kubepods)
    collector = CgroupCollector(kubepods, vmstat=Path("/proc/vmstat"))
    before = series(collector)
    assert before[ALERTING] == 0

    # A container hitting its own memory.max: the OOM domain is the container.
    container = kubepods.child("pod-a").create()
    container.write("memory.max", str(64 * MiB).encode())
    _no_swap(container)
    _oom_killed(spawn_hog(container, 256, hold_s=120))
    after_container = series(collector)
    assert after_container[ALERTING] == before[ALERTING]
    assert after_container[SUBTREE_KILLS] == before[SUBTREE_KILLS] + 1
    # /proc/vmstat counts cgroup OOM kills too: it cannot tell a machine OOM apart.
    assert after_container[NODE_KILLS] >= before[NODE_KILLS] + 1
    assert Cgroup(container.path).memory_events_local().oom >= 1

    # kubepods itself at its limit, the pod without one: the OOM domain is kubepods.
    kubepods.write("memory.max", str(96 * MiB).encode())
    pod = kubepods.child("pod-b").create()
    _no_swap(pod)
    _oom_killed(spawn_hog(pod, 256, hold_s=120))
    after_kubepods = series(collector)
    assert after_kubepods[ALERTING] >= after_container[ALERTING] + 1
    assert after_kubepods[SUBTREE_KILLS] == after_container[SUBTREE_KILLS] + 1
    assert pod.memory_events_local().oom == 0  # recorded at the domain, not the victim
