"""How fast the operator converges at scale, and how many API writes it spends doing it.

Starts the real control plane (tests/cluster), installs the CRDs, runs ``oomguard operator``
as a separate process, then creates 20 MemoryReservePolicies and N Nodes (varied labels and
memory, including equal-priority conflicts). It reports the time until every NodeMemoryReserve
matches what the pure resolution says it should be (seen on a watch, not by polling lists), the
operator's own count of API writes (its Prometheus endpoint), its CPU and memory, and the
apiserver's CPU. A second phase relabels 10 % of the nodes. A last phase, with the operator
stopped, has the benchmark itself create N more Nodes and then their N NodeMemoryReserves: the
floor any operator writing one object per node has on this apiserver.

Each repetition runs in a fresh control plane; the summary gives median, min and max.

    .venv/bin/python bench/operator_scale.py [--nodes 5000] [--policies 20] [--repeat 3] \
        [--out docs/bench/scale-operator.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
sys.path.insert(0, str(ROOT / "bench"))

from control_plane import running_control_plane  # noqa: E402
from crd_install import install_crds  # noqa: E402
from kubernetes import client  # noqa: E402
from kubernetes.client import CoreV1Api, CustomObjectsApi  # noqa: E402
from proc_stats import child_pid, cmdline, machine, sample, spread  # noqa: E402

from oomguard.operator.resolution.cluster_resolution import NodeFacts, resolve_cluster  # noqa: E402
from oomguard.operator.resolution.policy import InvalidPolicy, Policy, parse_policy  # noqa: E402
from oomguard.operator.resolution.reconcile_plan import reserve_body  # noqa: E402
from oomguard.wire.list_watch import WatchStream, list_json  # noqa: E402
from oomguard.wire.sizes import parse_size  # noqa: E402

GROUP, VERSION = "oomguard.io", "v1alpha1"
RESERVES = "nodememoryreserves"
GI = 2**30
THREADS = 8  # the benchmark's own client: parallel creates


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


def make_node(i: int, prefix: str = "bench-node") -> client.V1Node:
    name = f"{prefix}-{i:04}"
    labels = {"pool": f"p{i % 24}", "zone": f"z{i % 7}", "kubernetes.io/hostname": name}
    if i % 50 in (0, 1):
        labels["gpu"] = "ab"[i % 50]
    memory = f"{4 * (1 + i % 16)}Gi"
    capacity = {"cpu": "8", "memory": memory, "pods": "110"}
    return client.V1Node(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        status=client.V1NodeStatus(capacity=capacity, allocatable=capacity),
    )


def check_expectation(planned: Mapping[str, Any], listed: Mapping[str, Any]) -> None:
    if planned != listed:
        wrong = sorted(n for n in set(planned) | set(listed) if planned.get(n) != listed.get(n))
        raise SystemExit(
            f"planned specs differ from the resolution of the listed objects: {wrong[:5]}"
        )


def expected_specs(custom: CustomObjectsApi, core: CoreV1Api) -> dict[str, dict[str, Any]]:
    policies = [
        parse_policy(p)
        for p in custom.list_cluster_custom_object(GROUP, VERSION, "memoryreservepolicies")["items"]
    ]
    nodes = []
    for node in core.list_node().items:
        if not node.metadata.name.startswith("bench-node-"):
            continue
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
    return _specs(nodes, policies)


def planned_specs(
    nodes: int, policies: int, relabelled: frozenset[int] = frozenset()
) -> dict[str, dict[str, Any]]:
    """What every NodeMemoryReserve must say, from the benchmark's own definitions (the
    ``relabelled`` nodes in pool p0): known before the clock starts, so no listing of
    thousands of objects runs inside a timed window. ``expected_specs`` checks it afterwards
    against what the apiserver holds."""
    facts = []
    for i in range(nodes):
        node = make_node(i)
        labels = dict(node.metadata.labels)
        if i in relabelled:
            labels["pool"] = "p0"
        facts.append(
            NodeFacts(node.metadata.name, "", labels, parse_size(node.status.capacity["memory"]))
        )
    return _specs(facts, [parse_policy(p) for p in make_policies(policies)])


def _specs(
    nodes: list[NodeFacts], policies: list[Policy | InvalidPolicy]
) -> dict[str, dict[str, Any]]:
    """Every node's NodeMemoryReserve spec as the operator's resolution makes it."""
    resolution = resolve_cluster(nodes, policies)
    return {name: settings.to_spec() for name, settings in resolution.desired.items()}


class ReserveMirror:
    """Every NodeMemoryReserve's spec, from one list and watch, and when they first all matched
    an expectation: one watch instead of listing thousands of objects every few hundred ms."""

    def __init__(self, custom: CustomObjectsApi) -> None:
        self._custom = custom
        self._stream = WatchStream(10.0)
        self._cond = threading.Condition()
        self._specs: dict[str, Any] = {}
        self._expected: Mapping[str, Any] | None = None
        self._wrong: set[str] = set()
        self.matched_at: float | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        items, version = list_json(
            self._custom.list_cluster_custom_object, GROUP, VERSION, RESERVES
        )
        for item in items:
            self._update(item["metadata"]["name"], item.get("spec"))
        self._version = version
        self._thread.start()

    def stop(self) -> None:
        self._stop = True
        self._stream.interrupt()

    def _run(self) -> None:
        while not self._stop:
            try:
                for event in self._stream.events(
                    self._custom.list_cluster_custom_object,
                    GROUP,
                    VERSION,
                    RESERVES,
                    resource_version=self._version,
                    timeout_seconds=600,
                ):
                    obj = event["object"]
                    self._version = obj["metadata"]["resourceVersion"]
                    if event["type"] == "BOOKMARK":
                        continue
                    name = obj["metadata"]["name"]
                    self._update(name, None if event["type"] == "DELETED" else obj.get("spec"))
            except Exception:
                if self._stop:
                    return
                raise

    def _update(self, name: str, spec: Any) -> None:
        with self._cond:
            if spec is None:
                self._specs.pop(name, None)
            else:
                self._specs[name] = spec
            if self._expected is not None:
                self._check(name)
            self._cond.notify_all()

    def _check(self, name: str) -> None:
        assert self._expected is not None
        if self._specs.get(name) == self._expected.get(name):
            self._wrong.discard(name)
            if not self._wrong and self.matched_at is None:
                self.matched_at = time.monotonic()
        else:
            self._wrong.add(name)
            self.matched_at = None

    def expect(self, expected: Mapping[str, Any]) -> None:
        with self._cond:
            self._expected = expected
            self.matched_at = None
            self._wrong = {
                n for n in set(self._specs) | set(expected) if self._specs.get(n) != expected.get(n)
            }
            if not self._wrong:
                self.matched_at = time.monotonic()

    def wait(self, timeout: float) -> float:
        """When every reserve first matched (monotonic); raises after ``timeout``."""
        with self._cond:
            if not self._cond.wait_for(lambda: not self._wrong, timeout):
                raise SystemExit(f"not converged after {timeout}s: {len(self._wrong)} wrong")
            assert self.matched_at is not None
            return self.matched_at

    def still_matches(self) -> bool:
        with self._cond:
            return not self._wrong


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


def run_once(args: argparse.Namespace) -> dict[str, Any]:
    relabel = args.relabel if args.relabel is not None else args.nodes // 10
    with running_control_plane(ready_timeout=120) as cp:
        apiserver = child_pid("kube-apiserver")
        apiserver_flags = cmdline(apiserver)[1:]
        install_crds(cp.api_client)
        core = CoreV1Api(cp.api_client)
        custom = CustomObjectsApi(cp.api_client)
        port = free_port()
        log_path = cp.workdir / "operator.log"
        spy = str(Path(sys.executable).parent / "py-spy")
        wrapper = (
            [spy, "record", "--format", "raw", "--rate", "50", "-o", str(args.profile), "--"]
            if args.profile
            else []
        )
        with log_path.open("w") as log:
            operator = subprocess.Popen(
                [
                    *wrapper,
                    str(args.operator_python),
                    "-m",
                    "oomguard",
                    "operator",
                    "--metrics-port",
                    str(port),
                    "--liveness",
                    "",
                    "--resync-seconds",
                    "60",
                    *args.operator_arg,
                ],
                env={**os.environ, "KUBECONFIG": str(cp.kubeconfig)},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        mirror = ReserveMirror(custom)
        try:
            for _ in range(100):
                try:
                    operator_metrics(port)
                    break
                except OSError:
                    time.sleep(0.2)
            time.sleep(2)  # let kopf finish its initial listings
            operator_pid = _profiled_pid(operator.pid) if args.profile else operator.pid
            mirror.start()
            # The expectations are worked out before each clock starts (planned_specs) and
            # checked against the apiserver's objects after it stops: a list of every Node
            # inside the window would time the benchmark's own client (seconds at 5,000).
            expected = planned_specs(args.nodes, args.policies)
            relabelled = frozenset(range(1, relabel * 2, 2))
            expected2 = planned_specs(args.nodes, args.policies, relabelled)
            changed = sum(1 for n in expected2 if expected2[n] != expected.get(n))
            mirror.expect(expected)
            operator_before = sample(operator_pid)
            apiserver_before = sample(apiserver)
            started = time.monotonic()
            for body in make_policies(args.policies):
                custom.create_cluster_custom_object(GROUP, VERSION, "memoryreservepolicies", body)
            with ThreadPoolExecutor(THREADS) as pool:
                list(pool.map(core.create_node, (make_node(i) for i in range(args.nodes))))
            created = time.monotonic() - started
            converged = mirror.wait(args.timeout) - started
            operator_converged = sample(operator_pid)
            apiserver_converged = sample(apiserver)
            time.sleep(3)  # any late duplicate write would show up now
            phase1 = operator_metrics(port)
            still = mirror.still_matches()
            check_expectation(expected, expected_specs(custom, core))

            mirror.expect(expected2)
            relabel_started = time.monotonic()
            with ThreadPoolExecutor(THREADS) as pool:
                list(
                    pool.map(
                        lambda i: core.patch_node(
                            f"bench-node-{i:04}", {"metadata": {"labels": {"pool": "p0"}}}
                        ),
                        sorted(relabelled),
                    )
                )
            relabel_patched = time.monotonic() - relabel_started
            relabel_converged = mirror.wait(args.timeout) - relabel_started
            time.sleep(3)
            check_expectation(expected2, expected_specs(custom, core))
            phase2 = operator_metrics(port)
            operator_end = sample(operator_pid)
        finally:
            mirror.stop()
            operator.send_signal(signal.SIGINT)
            operator.wait(60)
        if args.keep_log:
            args.keep_log.write_bytes(log_path.read_bytes())

        # The floor: the same number of Nodes and then NodeMemoryReserves, by this client.
        floor_started = time.monotonic()
        with ThreadPoolExecutor(THREADS) as pool:
            floor_nodes = list(
                pool.map(core.create_node, (make_node(i, "floor-node") for i in range(args.nodes)))
            )
        floor_nodes_seconds = time.monotonic() - floor_started
        policy = parse_policy(make_policies(1)[0])
        bodies = [
            reserve_body(policy.settings_for(n.metadata.name, 8 * GI), n.metadata.uid)
            for n in floor_nodes
        ]
        reserves_started = time.monotonic()
        with ThreadPoolExecutor(THREADS) as pool:
            list(
                pool.map(
                    lambda b: custom.create_cluster_custom_object(GROUP, VERSION, RESERVES, b),
                    bodies,
                )
            )
        floor_reserves_seconds = time.monotonic() - reserves_started

    return {
        "nodes": args.nodes,
        "policies": args.policies,
        "create_seconds": round(created, 2),
        "converged_seconds_after_start": round(converged, 2),
        "converged_over_create": round(converged / created, 2),
        "still_converged_3s_later": still,
        "floor_nodes_seconds": round(floor_nodes_seconds, 2),
        "floor_reserves_seconds": round(floor_reserves_seconds, 2),
        "converged_over_floor": round(
            converged / (floor_nodes_seconds + floor_reserves_seconds), 2
        ),
        "reserves": len(expected),
        "reserve_writes": writes(phase1, "NodeMemoryReserve"),
        "status_writes": writes(phase1, "MemoryReservePolicy"),
        "reconciles": int(
            sum(v for k, v in phase1.items() if k.startswith("oomguard_operator_reconciles_total"))
        ),
        "operator_cpu_seconds_to_converge": round(
            operator_converged.cpu_seconds - operator_before.cpu_seconds, 2
        ),
        "apiserver_cpu_seconds_to_converge": round(
            apiserver_converged.cpu_seconds - apiserver_before.cpu_seconds, 2
        ),
        "operator_rss_mib_converged": round(operator_converged.rss_bytes / 2**20, 1),
        "operator_peak_rss_mib": round(operator_end.peak_rss_bytes / 2**20, 1),
        "relabelled_nodes": relabel,
        "relabel_reserves_changed": changed,
        "relabel_patch_seconds": round(relabel_patched, 2),
        "relabel_converged_seconds": round(relabel_converged, 2),
        "relabel_converged_after_last_patch_seconds": round(relabel_converged - relabel_patched, 2),
        "relabel_reserve_writes": writes(phase2, "NodeMemoryReserve")
        - writes(phase1, "NodeMemoryReserve"),
        "apiserver_flags": apiserver_flags,
    }


SUMMARISED = (
    "create_seconds",
    "converged_seconds_after_start",
    "converged_over_create",
    "floor_nodes_seconds",
    "floor_reserves_seconds",
    "converged_over_floor",
    "operator_cpu_seconds_to_converge",
    "apiserver_cpu_seconds_to_converge",
    "operator_peak_rss_mib",
    "relabel_patch_seconds",
    "relabel_converged_seconds",
    "relabel_converged_after_last_patch_seconds",
)


def _profiled_pid(spy: int, timeout: float = 30.0) -> int:
    """The operator's pid under py-spy: py-spy's child running this interpreter's binary."""
    executable = Path(os.path.realpath(sys.executable)).name
    deadline = time.monotonic() + timeout
    while True:
        try:
            return child_pid(executable, spy)
        except LookupError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--policies", type=int, default=20)
    parser.add_argument("--relabel", type=int, help="nodes to relabel (default: 10 %%)")
    parser.add_argument("--repeat", type=int, default=1, help="runs, each on a fresh cluster")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument(
        "--operator-python",
        type=Path,
        default=Path(sys.executable),
        help="the interpreter (virtualenv) whose oomguard runs as the operator, e.g. another "
        "checkout's, for a before/after comparison",
    )
    parser.add_argument("--operator-arg", action="append", default=[], help="passed on")
    parser.add_argument("--out", type=Path, help="add this run's figures to this JSON file")
    parser.add_argument("--label", default="", help="prefix of this run's key in --out")
    parser.add_argument("--profile", type=Path, help="run the operator under py-spy (raw)")
    parser.add_argument("--keep-log", type=Path, help="copy the operator's log here")
    args = parser.parse_args()

    info = {**machine(), "python": platform.python_version(), "threads": THREADS}
    runs = []
    for run in range(args.repeat):
        figures = run_once(args)
        runs.append(figures)
        shown = {k: v for k, v in figures.items() if k != "apiserver_flags"}
        print(f"run {run + 1}/{args.repeat}: {json.dumps(shown)}", flush=True)
    summary = {key: spread([run[key] for run in runs]) for key in SUMMARISED}
    result = {
        "machine": {**info, "loadavg_end": os.getloadavg()},
        "operator_args": args.operator_arg,
        "operator_python": str(args.operator_python),
        "nodes": args.nodes,
        "policies": args.policies,
        "summary": summary,
        "runs": runs,
    }
    print(json.dumps({"nodes": args.nodes, "policies": args.policies, **summary}, indent=2))
    if args.out:
        existing = json.loads(args.out.read_text()) if args.out.exists() else {}
        existing[f"{args.label}{args.nodes}x{args.policies}"] = result
        args.out.write_text(json.dumps(existing, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
