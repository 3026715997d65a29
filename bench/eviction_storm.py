"""Many node agents evicting at once through the eviction webhook, on the real apiserver.

Starts tests/cluster's control plane on 127.0.0.1, then makes N
nodes (500 by default), and on each an agent pod, whose bound ServiceAccount token is that
node's agent identity, as on a cluster. Each repetition runs four rounds; in each, every
node's agent evicts one fresh pod on its own node, all N released together by a barrier:

  - no webhook     the apiserver alone: what an eviction storm costs without oomguard's webhook
  - webhook        the webhook installed, no cluster cap
  - webhook + cap  the webhook with the chart's cluster-wide cap (60 in any 60 s by default)
  - ..., stopped   the same with the webhook process stopped (SIGSTOP): the apiserver's calls
                   time out and failurePolicy Ignore lets the evictions through uncounted

and prints, side by side: end-to-end p50/p99 (POST pods/eviction -> answer), the webhook's
server-side p50/p99 (request read -> verdict written), the webhook process's CPU per round,
the answers by status, the reviews the apiserver let through without the webhook's answer
(its ``apiserver_admission_webhook_fail_open_count``: failurePolicy Ignore after a timeout or
a failed call; the cap cannot count those), and whether the cap held (allowed == cap, the
rest 429 with Retry-After). An answer 429 that is not the webhook's (the apiserver's own flow
control) is retried after its Retry-After, as the agent does, and counted apart.

The webhook runs in its own process (bench/webhook_process.py), as the operator does on a
cluster: in this one it would share the interpreter lock with the agents' threads.

    .venv/bin/python bench/eviction_storm.py [--nodes 500] [--repetitions 3] [--cap 60]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
sys.path.insert(0, str(ROOT / "tests" / "operator" / "webhook"))

from control_plane import ControlPlane, free_port, running_control_plane  # noqa: E402
from k8s_helpers import (  # noqa: E402
    PAUSE_IMAGE,
    create_namespace,
    create_node,
    create_pod_on_node,
    ensure_service_account,
    request_token,
    set_pod_running,
    token_client,
    wait_for,
)
from kubernetes import client  # noqa: E402
from kubernetes.client import ApiClient, CoreV1Api  # noqa: E402
from kubernetes.client.exceptions import ApiException  # noqa: E402
from proc_stats import child_pid, cmdline, machine, sample  # noqa: E402
from stormlib.spread import spread  # noqa: E402
from webhook_harness import (  # noqa: E402
    delete_configuration,
    grant_evictions,
    install_configuration,
    webhook_configuration,
)

from oomguard.operator.webhook.webhook_runtime import WEBHOOK_NAME  # noqa: E402

CAPPED_MESSAGE = "may be evicted in"  # the webhook's cap denial (eviction_decision.capped)
CALLS = "apiserver_admission_webhook_request_total"
FAILED_OPEN = "apiserver_admission_webhook_fail_open_count"
APF_RETRIES = 20


@dataclass
class Answer:
    status: int
    seconds: float  # the whole eviction, retries after the apiserver's own 429s included
    apf_retries: int = 0


@dataclass
class Round:
    label: str
    answers: list[Answer] = field(default_factory=list)
    server: list[tuple[str, float]] = field(default_factory=list)  # (reason, seconds)
    webhook_cpu_s: float | None = None
    apiserver_cpu_s: float = 0.0
    wall_s: float = 0.0
    webhook_calls: float = 0.0  # the apiserver's calls to the webhook in the storm
    failed_open: float = 0.0  # ... of which it let through unanswered (failurePolicy Ignore)


class WebhookProcess:
    """bench/webhook_process.py running, talked to over its stdin/stdout."""

    def __init__(
        self, cp: ControlPlane, port: int, username: str, name: str, cap: int, window: float
    ) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "bench" / "webhook_process.py"),
                f"--kubeconfig={cp.kubeconfig}",
                f"--port={port}",
                f"--agent-username={username}",
                f"--configuration={name}",
                f"--cap={cap}",
                f"--window={window}",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.ask(None, "ready")

    def ask(self, command: str | None, expect: str | None = None) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline().strip()
        if not line or (expect is not None and line != expect):
            raise AssertionError(f"the webhook process answered {line!r} (exit {self.proc.poll()})")
        return line

    def cpu_seconds(self) -> float:
        return sample(self.proc.pid).cpu_seconds

    def timings(self) -> list[tuple[str, float]]:
        return [(reason, secs) for reason, secs in json.loads(self.ask("timings"))]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def webhook_counter(api: ApiClient, metric: str) -> float:
    """The sum of the apiserver's ``metric`` over oomguard's webhook (all label values)."""
    response = api.call_api("GET", f"{api.configuration.host}/metrics")
    text = response.read().decode()
    pattern = re.compile(rf'^{metric}{{[^}}]*name="{re.escape(WEBHOOK_NAME)}"[^}}]*}} (\S+)$')
    return sum(float(m.group(1)) for line in text.splitlines() if (m := pattern.match(line)))


def evict(core: CoreV1Api, namespace: str, name: str) -> Answer:
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=namespace))
    start = time.perf_counter()
    for attempt in range(APF_RETRIES + 1):
        try:
            core.create_namespaced_pod_eviction(name, namespace, body)
        except ApiException as exc:
            ours = CAPPED_MESSAGE in (exc.body or "")
            if exc.status == 429 and not ours and attempt < APF_RETRIES:
                time.sleep(float((exc.headers or {}).get("Retry-After", "1")))
                continue
            return Answer(int(exc.status), time.perf_counter() - start, attempt)
        return Answer(201, time.perf_counter() - start, attempt)
    raise AssertionError("unreachable")


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{1000 * value:.1f}"


class Cluster:
    """N nodes, each with its agent pod and that agent's client (a token bound to the pod)."""

    def __init__(self, cp: ControlPlane, nodes: int) -> None:
        self.cp = cp
        self.admin = CoreV1Api(cp.api_client)
        self.ns = create_namespace(self.admin)
        ensure_service_account(self.admin, self.ns, "agent")
        grant_evictions(cp.api_client, self.ns, "agent")
        self.username = f"system:serviceaccount:{self.ns}:agent"
        self.apiserver = child_pid("kube-apiserver")
        self.rounds = 0
        with ThreadPoolExecutor(16) as pool:
            self.nodes = list(
                pool.map(lambda _: create_node(self.admin).metadata.name, range(nodes))
            )
            self.agents = list(pool.map(self._agent, self.nodes))

    def _agent(self, node: str) -> CoreV1Api:
        pod = self.admin.create_namespaced_pod(
            self.ns,
            client.V1Pod(
                metadata=client.V1ObjectMeta(generate_name="agent-"),
                spec=client.V1PodSpec(
                    node_name=node,
                    service_account_name="agent",
                    containers=[client.V1Container(name="agent", image=PAUSE_IMAGE)],
                ),
            ),
        )
        pod = set_pod_running(self.admin, pod)
        token = request_token(self.admin, self.ns, "agent", bound_pod=pod)
        return CoreV1Api(token_client(self.cp, token))

    def victims(self) -> list[str]:
        """One fresh Running pod on every node, named by round (evicted pods stay, terminating,
        with no kubelet to end them: random names would collide with them, at this count)."""
        self.rounds += 1

        def one(i: int) -> str:
            name = f"victim-{self.rounds}-{i}"
            return str(create_pod_on_node(self.admin, self.ns, self.nodes[i], name).metadata.name)

        with ThreadPoolExecutor(16) as pool:
            return list(pool.map(one, range(len(self.nodes))))

    def storm(self, label: str, hook: WebhookProcess | None, *, stopped: bool = False) -> Round:
        """Every agent evicts its node's victim at the same moment."""
        victims = self.victims()
        gate = threading.Barrier(len(self.agents) + 1)
        result = Round(label)

        def one(i: int) -> Answer:
            gate.wait()
            return evict(self.agents[i], self.ns, victims[i])

        api = self.cp.api_client
        calls, failed_open = webhook_counter(api, CALLS), webhook_counter(api, FAILED_OPEN)
        if hook is not None:
            hook.ask("clear", "ok")
            cpu_start = hook.cpu_seconds()
            if stopped:
                os.kill(hook.proc.pid, signal.SIGSTOP)
        with ThreadPoolExecutor(len(self.agents)) as pool:
            futures = [pool.submit(one, i) for i in range(len(self.agents))]
            apiserver_cpu = sample(self.apiserver).cpu_seconds
            gate.wait()
            start = time.perf_counter()
            result.answers = [f.result() for f in futures]
            result.wall_s = time.perf_counter() - start
            result.apiserver_cpu_s = sample(self.apiserver).cpu_seconds - apiserver_cpu
        if hook is not None:
            if stopped:
                os.kill(hook.proc.pid, signal.SIGCONT)
            result.webhook_cpu_s = hook.cpu_seconds() - cpu_start
            # stopped: what it answers once let go goes to callers that gave up long ago
            result.server = [] if stopped else hook.timings()
        result.webhook_calls = webhook_counter(api, CALLS) - calls
        result.failed_open = webhook_counter(api, FAILED_OPEN) - failed_open
        return result


STOPPED = "webhook stopped"  # the label's tail of the round with the webhook process stopped


def repetition(cluster: Cluster, cap: int, window: float) -> list[Round]:
    rounds = [cluster.storm("no webhook", None)]
    capped = f"webhook + cap {cap}/{window:.0f}s"
    for label, limit, stop in (
        ("webhook", 0, False),
        (capped, cap, False),
        (f"{capped}, {STOPPED}", cap, True),
    ):
        rounds.append(_webhook_round(cluster, label, limit, window, stop=stop))
    return rounds


def _webhook_round(
    cluster: Cluster, label: str, cap: int, window: float, *, stop: bool = False
) -> Round:
    """Install the webhook, wait until the apiserver calls it, storm, remove it again.

    ``stop``: the webhook process is stopped (SIGSTOP) through the storm, as an operator
    that hangs or a node that is lost: every call times out and the chart's failurePolicy
    (Ignore) decides. The control for the "failed open" column, and the measure of what
    the cap is worth while the webhook cannot answer."""
    name, port = "oomguard-storm-bench", free_port()
    url = f"https://127.0.0.1:{port}/validate-eviction"
    probe = create_pod_on_node(cluster.admin, cluster.ns, cluster.nodes[0]).metadata.name

    def cross_node_dry_run() -> int:  # denied (403) only while the webhook is called
        return _dry_evict(cluster.agents[1], cluster.ns, probe)

    install_configuration(cluster.cp.api_client, webhook_configuration(name, url, cluster.username))
    hook = WebhookProcess(cluster.cp, port, cluster.username, name, cap, window)
    try:
        wait_for("the webhook to be enforced", lambda: cross_node_dry_run() == 403, timeout=60)
        result = cluster.storm(label, hook, stopped=stop)
    finally:
        hook.close()
    delete_configuration(cluster.cp.api_client, name)
    wait_for("the webhook to be gone", lambda: cross_node_dry_run() == 201, timeout=60)
    return result


def _dry_evict(core: CoreV1Api, namespace: str, name: str) -> int:
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=namespace))
    try:
        core.create_namespaced_pod_eviction(name, namespace, body, dry_run="All")
    except ApiException as exc:
        return int(exc.status)
    return 201


def summary(rounds: list[Round], cap: int) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in rounds:
        e2e = [a.seconds for a in r.answers]
        server = [s for _, s in r.server]
        reasons = Counter(reason for reason, _ in r.server)
        out[r.label] = {
            "evictions": len(r.answers),
            "statuses": dict(Counter(a.status for a in r.answers)),
            "apf_retries": sum(a.apf_retries for a in r.answers),
            "e2e_p50_s": pct(e2e, 0.5),
            "e2e_p99_s": pct(e2e, 0.99),
            "wall_s": r.wall_s,
            "server_p50_s": pct(server, 0.5),
            "server_p99_s": pct(server, 0.99),
            "server_reasons": dict(reasons),
            "webhook_cpu_s": r.webhook_cpu_s,
            "apiserver_cpu_s": r.apiserver_cpu_s,
            "webhook_calls": r.webhook_calls,
            "failed_open": r.failed_open,
        }
        if "cap" in r.label:
            allowed = sum(1 for a in r.answers if a.status == 201)
            out[r.label]["cap_held"] = allowed == min(cap, len(r.answers))
    return out


def report(results: list[dict[str, dict[str, Any]]], nodes: int, cap: int) -> None:
    labels = list(results[0])
    print(f"\n{nodes} agents evicting at once, {len(results)} repetitions: median [min-max]")
    header = (
        f"{'round':<40} {'e2e p50 ms':>20} {'e2e p99 ms':>22} {'webhook p50 ms':>18} "
        f"{'webhook p99 ms':>18} {'webhook CPU s':>18} {'apiserver CPU s':>18} "
        f"{'failed open':>12}  answers"
    )
    print(header)
    for label in labels:
        rows = [r[label] for r in results]

        def col(key: str, rows: list[dict[str, Any]] = rows) -> list[float | None]:
            return [r[key] for r in rows]

        answers = " / ".join(
            ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items())) for r in rows
        )
        print(
            f"{label:<40} {spread(col('e2e_p50_s'), ms):>20} {spread(col('e2e_p99_s'), ms):>22} "
            f"{spread(col('server_p50_s'), ms):>18} {spread(col('server_p99_s'), ms):>18} "
            f"{spread(col('webhook_cpu_s'), seconds):>18} "
            f"{spread(col('apiserver_cpu_s'), seconds):>18} "
            f"{' / '.join(str(int(r.get('failed_open', 0))) for r in rows):>12}  "
            f"{answers}"
        )
    base, hooked = labels[0], labels[1]
    ratios = [
        (r[hooked]["e2e_p99_s"] / r[base]["e2e_p99_s"]) for r in results if r[base]["e2e_p99_s"]
    ]
    print(f"e2e p99, webhook / no webhook: {spread(ratios, lambda v: f'{v:.2f}x')}")
    for label in labels[2:]:
        held = [r[label].get("cap_held") for r in results]
        opened = [int(r[label].get("failed_open", 0)) for r in results]
        print(
            f"{label}: cap {cap} held (allowed == cap, the rest 429) in "
            f"{sum(bool(h) for h in held)} of {len(held)}; failed open {opened}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--cap", type=int, default=60, help="the chart's default maxEvictions")
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--out", type=Path, help="write the raw figures here (JSON)")
    args = parser.parse_args()
    info = machine()
    with running_control_plane() as cp:
        t0 = time.monotonic()
        cluster = Cluster(cp, args.nodes)
        info["apiserver_flags"] = cmdline(cluster.apiserver)[1:]
        print(f"{args.nodes} nodes and agents in {time.monotonic() - t0:.1f} s", flush=True)
        results = []
        for k in range(args.repetitions):
            rounds = repetition(cluster, args.cap, args.window)
            results.append(summary(rounds, args.cap))
            print(f"repetition {k}: {json.dumps(results[-1])}", flush=True)
    report(results, args.nodes, args.cap)
    if args.out:
        info["loadavg_end"] = os.getloadavg()
        raw = {"machine": info, "nodes": args.nodes, "cap": args.cap, "results": results}
        args.out.write_text(json.dumps(raw, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
