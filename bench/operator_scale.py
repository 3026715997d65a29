"""How fast the operator converges at scale, and how many API writes it spends doing it.

Starts the real control plane (tests/cluster), installs the CRDs, runs ``oomguard operator``
as a separate process, then creates 20 MemoryReservePolicies and 1,000 Nodes (varied labels and
memory, including equal-priority conflicts). It reports the time until every NodeMemoryReserve
matches what the pure resolution says it should be, and the operator's own count of API writes
(from its Prometheus endpoint). A second phase relabels 100 nodes and measures the same.

    .venv/bin/python bench/operator_scale.py [--nodes 1000] [--policies 20]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))

from control_plane import running_control_plane  # noqa: E402
from crd_install import install_crds  # noqa: E402
from kubernetes import client  # noqa: E402
from kubernetes.client import CoreV1Api, CustomObjectsApi  # noqa: E402

from oomguard.operator.resolution.cluster_resolution import NodeFacts, resolve_cluster  # noqa: E402
from oomguard.operator.resolution.policy import parse_policy  # noqa: E402
from oomguard.wire.sizes import parse_size  # noqa: E402

GROUP, VERSION = "oomguard.io", "v1alpha1"
GI = 2**30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_policies(count: int) -> list[dict[str, Any]]:
    """One catch-all, pool policies, zone policies, and equal-priority gpu pairs (conflicts)."""
    specs: list[tuple[str, dict[str, Any]]] = [
        ("all", {"reserve": {"percent": 10, "min": "512Mi", "max": "4Gi"}}),
    ]
    i = 0
    while len(specs) < count:
        kind = i % 4
        if kind in (0, 1):
            specs.append(
                (
                    f"pool-{i}",
                    {
                        "priority": 10,
                        "nodeSelector": {"matchLabels": {"pool": f"p{i}"}},
                        "reserve": {"absolute": f"{(i % 8 + 1) * 256}Mi"},
                    },
                )
            )
        elif kind == 2:
            specs.append(
                (
                    f"zone-{i}",
                    {
                        "priority": 5,
                        "nodeSelector": {"matchLabels": {"zone": f"z{i % 7}"}},
                        "reserve": {"percent": 5 + i % 10},
                        "monitor": {"pressure": {"enabled": True}},
                    },
                )
            )
        else:
            specs.append(
                (
                    f"gpu-{i}",
                    {
                        "priority": 20,
                        "nodeSelector": {
                            "matchExpressions": [
                                {"key": "gpu", "operator": "In", "values": ["a", "b"]}
                            ]
                        },
                        "reserve": {"absolute": f"{i}Gi"},
                    },
                )
            )
        i += 1
    return [
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MemoryReservePolicy",
            "metadata": {"name": name},
            "spec": spec,
        }
        for name, spec in specs
    ]


def make_node(i: int) -> client.V1Node:
    name = f"bench-node-{i:04}"
    labels = {"pool": f"p{i % 24}", "zone": f"z{i % 7}", "kubernetes.io/hostname": name}
    if i % 50 in (0, 1):
        labels["gpu"] = "ab"[i % 50]
    memory = f"{4 * (1 + i % 16)}Gi"
    capacity = {"cpu": "8", "memory": memory, "pods": "110"}
    return client.V1Node(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        status=client.V1NodeStatus(capacity=capacity, allocatable=capacity),
    )


def expected_specs(custom: CustomObjectsApi, core: CoreV1Api) -> dict[str, dict[str, Any]]:
    policies = [
        parse_policy(p)
        for p in custom.list_cluster_custom_object(GROUP, VERSION, "memoryreservepolicies")["items"]
    ]
    nodes = []
    for node in core.list_node().items:
        memory = (
            node.status.capacity.get("memory") if node.status and node.status.capacity else None
        )
        nodes.append(
            NodeFacts(
                node.metadata.name,
                node.metadata.uid,
                node.metadata.labels or {},
                parse_size(memory) if memory else None,
            )
        )
    resolution = resolve_cluster(nodes, policies)
    return {name: settings.to_spec() for name, settings in resolution.desired.items()}


def wait_converged(
    custom: CustomObjectsApi, expected: dict[str, dict[str, Any]], timeout: float
) -> float:
    started = time.monotonic()
    while True:
        items = custom.list_cluster_custom_object(GROUP, VERSION, "nodememoryreserves")["items"]
        actual = {item["metadata"]["name"]: item["spec"] for item in items}
        if actual == expected:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            wrong = [n for n in expected if actual.get(n) != expected[n]]
            extra = [n for n in actual if n not in expected]
            raise SystemExit(
                f"not converged after {timeout}s: {len(wrong)} wrong, {len(extra)} extra"
            )
        time.sleep(0.25)


def operator_metrics(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("oomguard_operator_") and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values


def writes(metrics: dict[str, float], kind: str) -> int:
    return int(
        sum(
            v
            for k, v in metrics.items()
            if k.startswith("oomguard_operator_objects_written_total") and f'kind="{kind}"' in k
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--policies", type=int, default=20)
    parser.add_argument("--relabel", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    with running_control_plane(ready_timeout=120) as cp:
        install_crds(cp.api_client)
        core = CoreV1Api(cp.api_client)
        custom = CustomObjectsApi(cp.api_client)
        port = free_port()
        log_path = cp.workdir / "operator.log"
        with log_path.open("w") as log:
            operator = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "oomguard",
                    "operator",
                    "--metrics-port",
                    str(port),
                    "--liveness",
                    "",
                    "--resync-seconds",
                    "60",
                ],
                env={**os.environ, "KUBECONFIG": str(cp.kubeconfig)},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            for _ in range(100):
                try:
                    operator_metrics(port)
                    break
                except OSError:
                    time.sleep(0.2)
            time.sleep(2)  # let kopf finish its initial listings
            started = time.monotonic()
            for body in make_policies(args.policies):
                custom.create_cluster_custom_object(GROUP, VERSION, "memoryreservepolicies", body)
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(core.create_node, (make_node(i) for i in range(args.nodes))))
            created = time.monotonic() - started
            expected = expected_specs(custom, core)
            wait_converged(custom, expected, args.timeout)
            total = time.monotonic() - started
            time.sleep(3)  # any late duplicate write would show up now
            phase1 = operator_metrics(port)

            relabel_started = time.monotonic()
            with ThreadPoolExecutor(8) as pool:
                list(
                    pool.map(
                        lambda i: core.patch_node(
                            f"bench-node-{i:04}", {"metadata": {"labels": {"pool": "p0"}}}
                        ),
                        range(1, args.relabel * 2, 2),
                    )
                )
            expected2 = expected_specs(custom, core)
            changed = sum(1 for n in expected2 if expected2[n] != expected[n])
            wait_converged(custom, expected2, args.timeout)
            relabel_total = time.monotonic() - relabel_started
            time.sleep(3)
            phase2 = operator_metrics(port)
        finally:
            operator.terminate()
            operator.wait(30)
        figures = {
            "nodes": args.nodes,
            "policies": args.policies,
            "create_seconds": round(created, 2),
            "converged_seconds_after_start": round(total, 2),
            "reserves": len(expected),
            "reserve_writes": writes(phase1, "NodeMemoryReserve"),
            "status_writes": writes(phase1, "MemoryReservePolicy"),
            "reconciles": int(
                sum(
                    v
                    for k, v in phase1.items()
                    if k.startswith("oomguard_operator_reconciles_total")
                )
            ),
            "relabelled_nodes": args.relabel,
            "relabel_reserves_changed": changed,
            "relabel_converged_seconds": round(relabel_total, 2),
            "relabel_reserve_writes": writes(phase2, "NodeMemoryReserve")
            - writes(phase1, "NodeMemoryReserve"),
        }
        print(json.dumps(figures, indent=2))
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
