"""What N node agents cost the apiserver, beside what N kubelets' pod watches already cost.

Starts the real control plane (tests/cluster), installs the CRDs and the chart's agent RBAC
(its ClusterRole as helm renders it, bound to a ServiceAccount), creates one pod per node
(bound to the node by ``spec.nodeName``) and one NodeMemoryReserve per node, then measures three
phases in turn on the same apiserver, each over the same window with the same pod churn:

- ``idle``: no watches;
- ``kubelets``: N field-selected pod watches (``spec.nodeName=<node>``), as each kubelet holds;
- ``agents``: what N agents hold: the same pod watch, plus the watch on their own
  NodeMemoryReserve by name, as the chart's agent ServiceAccount (a token).

One asyncio process holds every watch (aiohttp, one HTTP/1.1 connection per watch; real
clients multiplex on HTTP/2, so connection setup here is the worst case and is not measured).
Churn: pod label patches at ``--rate`` per second, round robin over the nodes; each is also a
probe: the time from sending the patch until the watch of that pod's node delivers it.
Apiserver CPU and RSS come from /proc of its pid.

    .venv/bin/python bench/agent_load.py [--agents 1000] [--window 20] [--repeat 2] \\
        [--out docs/bench/scale-agents.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
sys.path.insert(0, str(ROOT / "tests" / "helm"))
sys.path.insert(0, str(ROOT / "bench"))

from chart_tools import one, render  # noqa: E402
from control_plane import ControlPlane, running_control_plane  # noqa: E402
from crd_install import install_crds  # noqa: E402
from k8s_helpers import ensure_service_account, request_token  # noqa: E402
from kubernetes import client  # noqa: E402
from kubernetes.client import CoreV1Api, CustomObjectsApi, RbacAuthorizationV1Api  # noqa: E402
from proc_stats import child_pid, cmdline, machine, sample, spread  # noqa: E402

from oomguard.wire.crd import GROUP, RESERVE_PLURAL, VERSION  # noqa: E402
from oomguard.wire.node_settings import NodeSettings  # noqa: E402

NAMESPACE = "bench"
AGENT_NS, AGENT_SA = "oomguard-system", "oomguard-agent"
KUBELET_SA = "bench-kubelet"


def node_name(i: int) -> str:
    return f"node-{i:05}"


def bind(rbac: RbacAuthorizationV1Api, name: str, rules: list[dict[str, Any]], sa: str) -> None:
    rbac.create_cluster_role(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": rules,
        }
    )
    rbac.create_cluster_role_binding(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": AGENT_NS}],
        }
    )


def populate(cp: ControlPlane, agents: int) -> tuple[str, str]:
    """Pods, reserves and identities; returns the agent's and the kubelet's tokens."""
    install_crds(cp.api_client)
    core = CoreV1Api(cp.api_client)
    custom = CustomObjectsApi(cp.api_client)
    rbac = RbacAuthorizationV1Api(cp.api_client)
    for ns in (NAMESPACE, AGENT_NS):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    ensure_service_account(core, NAMESPACE, "default")
    with tempfile.TemporaryDirectory() as home:
        agent_rules = one(render(Path(home), include_crds=False), "ClusterRole", "-agent")["rules"]
    kubelet_rules = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    for sa, rules in ((AGENT_SA, agent_rules), (KUBELET_SA, kubelet_rules)):
        ensure_service_account(core, AGENT_NS, sa)
        bind(rbac, f"bench-{sa}", rules, sa)

    def pod(i: int) -> None:
        core.create_namespaced_pod(
            NAMESPACE,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"pod-{i:05}", "labels": {"tick": "0"}},
                "spec": {
                    "nodeName": node_name(i),
                    "automountServiceAccountToken": False,
                    "containers": [{"name": "c", "image": "pause"}],
                },
            },
        )

    def reserve(i: int) -> None:
        name = node_name(i)
        custom.create_cluster_custom_object(
            GROUP,
            VERSION,
            RESERVE_PLURAL,
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "NodeMemoryReserve",
                "metadata": {"name": name},
                "spec": NodeSettings(name, 8 * 2**30, 2**30, source_policy="bench").to_spec(),
            },
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(pod, range(agents)))
        list(pool.map(reserve, range(agents)))
    tokens = tuple(
        request_token(core, AGENT_NS, sa, expiration_seconds=7200) for sa in (AGENT_SA, KUBELET_SA)
    )
    return tokens[0], tokens[1]


class Watches:
    """Many watches in one process; records when each probe's event arrives."""

    def __init__(self, cp: ControlPlane, session: aiohttp.ClientSession) -> None:
        self._cp = cp
        self._session = session
        self._tasks: list[asyncio.Task[None]] = []
        self.arrived: dict[str, float] = {}  # probe id -> monotonic arrival
        self.opened = 0
        self.refusals: dict[str, int] = {}  # status or error -> retries

    def open(self, path: str, params: dict[str, str], token: str) -> None:
        self._tasks.append(asyncio.create_task(self._watch(path, params, token)))

    async def _watch(self, path: str, params: dict[str, str], token: str) -> None:
        """Retries as a real client would (429 from API Priority and Fairness while thousands
        start at once, refused or reset connections), with full-jitter backoff."""
        query = {"watch": "1", "allowWatchBookmarks": "true", "timeoutSeconds": "3600", **params}
        headers = {"Authorization": f"Bearer {token}"}
        attempt = 0
        while True:
            try:
                async with self._session.get(
                    self._cp.server + path, params=query, headers=headers
                ) as response:
                    if response.status != 200:
                        self.refusals[str(response.status)] = (
                            self.refusals.get(str(response.status), 0) + 1
                        )
                    else:
                        self.opened += 1
                        async for line in response.content:
                            if not line.strip():
                                continue
                            event = json.loads(line)
                            meta = (event.get("object") or {}).get("metadata") or {}
                            probe = (meta.get("labels") or {}).get("probe")
                            if probe and probe not in self.arrived:
                                self.arrived[probe] = time.monotonic()
                        return
            except (TimeoutError, aiohttp.ClientError) as exc:
                name = type(exc).__name__
                self.refusals[name] = self.refusals.get(name, 0) + 1
            attempt += 1
            await asyncio.sleep(random.random() * min(10.0, 0.5 * 2**attempt))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


async def churn(
    core: CoreV1Api, agents: int, rate: float, window: float, phase: str
) -> dict[str, float]:
    """Label patches at ``rate``/s for ``window`` s, round robin; send times by probe id."""
    sent: dict[str, float] = {}
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    i = 0
    pending = []
    while time.monotonic() - started < window:
        probe = f"{phase}-{i}"
        target = f"pod-{(i * 7919) % agents:05}"
        sent[probe] = time.monotonic()
        pending.append(
            loop.run_in_executor(
                None,
                lambda t=target, p=probe: core.patch_namespaced_pod(
                    t, NAMESPACE, {"metadata": {"labels": {"probe": p}}}
                ),
            )
        )
        i += 1
        await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
    await asyncio.gather(*pending)
    return sent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def phase(
    name: str,
    cp: ControlPlane,
    apiserver: int,
    agents: int,
    args: argparse.Namespace,
    opener: Callable[[Watches], int],
) -> dict[str, Any]:
    ctx = ssl.create_default_context(cafile=str(cp.ca_file))
    connector = aiohttp.TCPConnector(limit=0, ssl=ctx)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=60)
    core = CoreV1Api(cp.api_client)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        watches = Watches(cp, session)
        expected = opener(watches)
        setup_started = time.monotonic()
        while watches.opened < expected:
            await asyncio.sleep(0.2)
            if time.monotonic() - setup_started > args.setup_timeout:
                break
        setup = time.monotonic() - setup_started
        await asyncio.sleep(args.settle)
        before = sample(apiserver)
        sent = await churn(core, agents, args.rate, args.window, name)
        await asyncio.sleep(1.0)  # stragglers
        after = sample(apiserver)
        latencies = [
            (watches.arrived[p] - t) * 1000 for p, t in sent.items() if p in watches.arrived
        ]
        figures: dict[str, Any] = {
            "phase": name,
            "watches": expected,
            "watches_open": watches.opened,
            "retried": watches.refusals,
            "setup_seconds": round(setup, 1),
            "apiserver_cpu_percent": round(
                (after.cpu_seconds - before.cpu_seconds) / (args.window + 1.0) * 100, 1
            ),
            "apiserver_rss_mib": round(after.rss_bytes / 2**20, 1),
            "probes": len(sent),
            "probes_seen": len(latencies),
        }
        if latencies and expected:
            figures["delivery_ms_p50"] = round(statistics.median(latencies), 1)
            figures["delivery_ms_p99"] = round(percentile(latencies, 0.99), 1)
        await watches.close()
    return figures


def run_once(args: argparse.Namespace) -> dict[str, Any]:
    n = args.agents
    with running_control_plane(ready_timeout=120) as cp:
        apiserver = child_pid("kube-apiserver")
        flags = cmdline(apiserver)[1:]
        populate_started = time.monotonic()
        agent_token, kubelet_token = populate(cp, n)
        populated = time.monotonic() - populate_started

        def none(_: Watches) -> int:
            return 0

        def kubelets(w: Watches) -> int:
            for i in range(n):
                w.open(
                    "/api/v1/pods",
                    {"fieldSelector": f"spec.nodeName={node_name(i)}"},
                    kubelet_token,
                )
            return n

        def agents(w: Watches) -> int:
            reserves = f"/apis/{GROUP}/{VERSION}/{RESERVE_PLURAL}"
            for i in range(n):
                node = node_name(i)
                w.open("/api/v1/pods", {"fieldSelector": f"spec.nodeName={node}"}, agent_token)
                w.open(reserves, {"fieldSelector": f"metadata.name={node}"}, agent_token)
            return 2 * n

        phases = [
            asyncio.run(phase(name, cp, apiserver, n, args, opener))
            for name, opener in (("idle", none), ("kubelets", kubelets), ("agents", agents))
        ]
    return {
        "agents": n,
        "populate_seconds": round(populated, 1),
        "phases": phases,
        "apiserver_flags": flags,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured per phase")
    parser.add_argument("--rate", type=float, default=10.0, help="pod patches per second")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after setup")
    parser.add_argument("--setup-timeout", type=float, default=600.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", type=Path, help="add the figures to this JSON file")
    args = parser.parse_args()

    info = machine()
    runs = []
    for run in range(args.repeat):
        figures = run_once(args)
        runs.append(figures)
        for p in figures["phases"]:
            print(f"run {run + 1}/{args.repeat} {json.dumps(p)}", flush=True)
    summary = {
        p: {
            key: spread([next(x for x in r["phases"] if x["phase"] == p)[key] for r in runs])
            for key in (
                "apiserver_cpu_percent",
                "apiserver_rss_mib",
                "delivery_ms_p50",
                "delivery_ms_p99",
            )
            if all(key in next(x for x in r["phases"] if x["phase"] == p) for r in runs)
        }
        for p in ("idle", "kubelets", "agents")
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        existing = json.loads(args.out.read_text()) if args.out.exists() else {}
        existing[str(args.agents)] = {
            "machine": {**info, "loadavg_end": os.getloadavg()},
            "window_seconds": args.window,
            "patches_per_second": args.rate,
            "summary": summary,
            "runs": runs,
        }
        args.out.write_text(json.dumps(existing, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
