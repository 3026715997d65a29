"""kind-config.yaml and the quickstart agree: oomguard's line sits below the kubelet's.

No Docker here, so kind itself never runs in CI; these check the numbers the quickstart's
promise rests on (reserve > systemReserved + kubeReserved > hard eviction threshold).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from oomguard.monitor.sizes import parse_size

REPO = Path(__file__).resolve().parents[2]
GI = 2**30
LOAD_MARKER = "<!-- quickstart-load:"


def _kind() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    return doc


def _kubelet() -> dict[str, Any]:
    patches = [yaml.safe_load(p) for p in _kind()["kubeadmConfigPatches"]]
    found = [p for p in patches if p["kind"] == "KubeletConfiguration"]
    assert len(found) == 1
    kubelet: dict[str, Any] = found[0]
    return kubelet


def test_one_control_plane_two_workers() -> None:
    doc = _kind()
    assert doc["kind"] == "Cluster" and doc["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert [n["role"] for n in doc["nodes"]] == ["control-plane", "worker", "worker"]


def test_guard_line_is_below_the_kubelet_cap_and_the_eviction_threshold() -> None:
    kubelet = _kubelet()
    reserved = parse_size(kubelet["systemReserved"]["memory"]) + parse_size(
        kubelet["kubeReserved"]["memory"]
    )
    hard = parse_size(kubelet["evictionHard"]["memory.available"])
    assert "pods" in kubelet["enforceNodeAllocatable"]  # the cap on kubepods exists
    assert "evictionSoft" not in kubelet

    quickstart = (REPO / "docs" / "kubernetes-quickstart.md").read_text()
    found = re.search(r"--set defaultPolicy\.reserve\.percent=(\d+)", quickstart)
    assert found is not None
    percent = int(found.group(1))
    assert 0 < percent <= 50  # the CRD's envelope; the agent's floor is half of node memory
    # kind nodes report the host's RAM: from a small laptop to a big workstation
    for capacity in (4 * GI, 8 * GI, 16 * GI, 64 * GI):
        reserve = capacity * percent // 100
        # memory.high = capacity - reserve must sit under memory.max = capacity - reserved ...
        assert reserve > reserved
        # ... and the kubelet's hard eviction (node-wide) must be the later line.
        assert reserve - hard > reserved - hard > 0


def test_quickstart_uses_the_chart_and_the_names_it_creates() -> None:
    quickstart = (REPO / "docs" / "kubernetes-quickstart.md").read_text()
    assert "kind create cluster --config kind-config.yaml" in quickstart
    assert "kind load docker-image oomguard:dev --name " + _kind()["name"] in quickstart
    assert "helm install oomguard helm/oomguard" in quickstart
    assert "pod-security.kubernetes.io/enforce=privileged" in quickstart


def _load_block() -> str:
    """The quickstart's sh block after the quickstart-load marker: the sized demo load."""
    quickstart = (REPO / "docs" / "kubernetes-quickstart.md").read_text()
    after = quickstart.split(LOAD_MARKER, 1)[1]
    found = re.search(r"```sh\n(.*?)```", after, re.DOTALL)
    assert found is not None
    return found.group(1)


STUB_KUBECTL = """#!/bin/sh
echo "$*" >>"$KUBECTL_LOG"
case "$1 $2" in
  "get nodememoryreserve") printf %s "$MEMORY_HIGH" ;;
esac
"""


@pytest.mark.parametrize("memory_high", [8 * GI, 16 * GI + 300 * 2**20, 31 * GI])
def test_quickstart_load_is_sized_from_the_nodes_memory_high(
    memory_high: int, tmp_path: Path
) -> None:
    """The block runs in sh with a stub kubectl (and a no-op sleep): it reads memoryHighBytes
    from the worker's NodeMemoryReserve and starts one 1 GiB pod at a time until the pods
    ask for more than memory.high, all pinned to that worker."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("kubectl", STUB_KUBECTL), ("sleep", "#!/bin/sh\n")):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "kubectl.log"
    done = subprocess.run(
        ["sh", "-eu", "-c", _load_block()],
        env={
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "KUBECTL_LOG": str(log),
            "MEMORY_HIGH": str(memory_high),
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == (
        "get nodememoryreserve oomguard-worker -o jsonpath={.status.memoryHighBytes}"
    )
    assert "stress --vm 1 --vm-bytes 1G --vm-hang 0" in calls[1] and "--replicas=0" in calls[1]
    assert '"kubernetes.io/hostname":"oomguard-worker"' in calls[2]
    scales = [c for c in calls if c.startswith("scale deployment hog")]
    assert scales == [f"scale deployment hog --replicas={n}" for n in range(1, len(scales) + 1)]
    # all pods but the last already ask for more than memory.high (the last is a margin for
    # what the kernel reclaims); one fewer again would not
    assert (len(scales) - 2) * GI <= memory_high < (len(scales) - 1) * GI
