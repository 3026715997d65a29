"""kind-config.yaml and the quickstart agree: oomguard's line sits below the kubelet's.

No Docker here, so kind itself never runs in CI; these check the numbers the quickstart's
promise rests on (reserve > systemReserved + kubeReserved > hard eviction threshold).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from oomguard.monitor.sizes import parse_size

REPO = Path(__file__).resolve().parents[2]


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
    found = re.search(r"--set defaultPolicy\.reserve\.absolute=(\S+)", quickstart)
    assert found is not None
    reserve = parse_size(found.group(1))
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
