"""What the eviction webhook costs per eviction, against the real control plane.

Starts tests/cluster's control plane, the webhook in-process on 127.0.0.1 (URL webhook, CA
published by the webhook itself), two nodes and an agent pod on node A. Then, N times each:
  - agent, own node, webhook installed   (server-side review time + end-to-end eviction)
  - agent, other node, webhook installed (denied: end-to-end)
  - agent, own node, webhook removed     (end-to-end baseline)
  - admin, webhook installed             (not matched by matchConditions: end-to-end)
Evictions are real: each one uses a fresh Running pod; dry-run rows isolate the webhook's
share from the ~100 ms a real eviction takes in this apiserver either way.

    .venv/bin/python bench/webhook_latency.py [--evictions 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
sys.path.insert(0, str(ROOT / "tests" / "operator" / "webhook"))

from control_plane import free_port, running_control_plane  # noqa: E402
from k8s_helpers import (  # noqa: E402
    PAUSE_IMAGE,
    create_namespace,
    create_node,
    create_pod_on_node,
    ensure_service_account,
    service_account_client,
    set_pod_running,
    wait_for,
)
from kubernetes import client  # noqa: E402
from kubernetes.client import CoreV1Api  # noqa: E402
from kubernetes.client.exceptions import ApiException  # noqa: E402
from webhook_harness import (  # noqa: E402
    background_webhook,
    delete_configuration,
    grant_evictions,
    install_configuration,
    webhook_configuration,
)

from oomguard.operator.webhook.webhook_runtime import WebhookOptions  # noqa: E402


def evict(core: CoreV1Api, namespace: str, name: str) -> int:
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=namespace))
    try:
        core.create_namespaced_pod_eviction(name, namespace, body)
    except ApiException as exc:
        return int(exc.status)
    return 201


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def line(label: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"{label:<44} n={len(ms):<4} p50={statistics.median(ms):7.2f} ms  "
        f"p95={pct(ms, 0.95):7.2f} ms  p99={pct(ms, 0.99):7.2f} ms  max={max(ms):7.2f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evictions", type=int, default=200)
    args = parser.parse_args()
    n = args.evictions
    with running_control_plane() as cp:
        admin = CoreV1Api(cp.api_client)
        ns = create_namespace(admin)
        node_a, node_b = create_node(admin).metadata.name, create_node(admin).metadata.name
        ensure_service_account(admin, ns, "agent")
        grant_evictions(cp.api_client, ns, "agent")
        agent_pod = set_pod_running(
            admin,
            admin.create_namespaced_pod(
                ns,
                client.V1Pod(
                    metadata=client.V1ObjectMeta(name="agent-a"),
                    spec=client.V1PodSpec(
                        node_name=node_a,
                        service_account_name="agent",
                        containers=[client.V1Container(name="agent", image=PAUSE_IMAGE)],
                    ),
                ),
            ),
        )
        agent = CoreV1Api(
            service_account_client(cp, ns, "agent", bound_pod=agent_pod, create=False)
        )
        username = f"system:serviceaccount:{ns}:agent"
        name, port = "oomguard-bench", free_port()
        url = f"https://127.0.0.1:{port}/validate-eviction"
        print(f"creating {4 * n} pods ...", flush=True)
        pods = {
            key: [create_pod_on_node(admin, ns, node).metadata.name for _ in range(n)]
            for key, node in (
                ("own", node_a),
                ("cross", node_b),
                ("base", node_a),
                ("admin", node_b),
            )
        }

        def timed(core: CoreV1Api, names: list[str], expect: int, dry: bool = False) -> list[float]:
            out = []
            for pod in names:
                start = time.perf_counter()
                status = (evict_dry if dry else evict)(core, ns, pod)
                out.append(time.perf_counter() - start)
                assert status == expect, (pod, status, expect)
            return out

        install_configuration(cp.api_client, webhook_configuration(name, url, username))
        options = WebhookOptions(
            port=port,
            host="127.0.0.1",
            agent_usernames=(username,),
            extra_hosts=("127.0.0.1",),
            configuration=name,
        )
        results: dict[str, list[float]] = {}
        with background_webhook(cp.api_client, options) as hook:
            probe = create_pod_on_node(admin, ns, node_b).metadata.name
            wait_for(
                "the webhook to be enforced",
                lambda: evict_dry(agent, ns, probe) == 403,
                timeout=30,
            )
            timings = hook.running.webhook.timings
            timings.clear()
            results["agent, own node, webhook (allowed)"] = timed(agent, pods["own"], 201)
            server_allowed = [s for reason, s in timings if reason == "own-node"]
            timings.clear()
            results["agent, other node, webhook (denied)"] = timed(agent, pods["cross"], 403)
            server_denied = [s for reason, s in timings if reason == "other-node"]
            timings.clear()
            results["admin, webhook installed (not matched)"] = timed(admin, pods["admin"], 201)
            calls_for_admin = len(timings)
            results["agent, own node, webhook, dry-run"] = timed(agent, pods["base"], 201, True)
            cached = len(hook.running.placements)
        delete_configuration(cp.api_client, name)
        time.sleep(2)  # the apiserver drops the configuration from its watch
        results["agent, own node, no webhook, dry-run"] = timed(agent, pods["base"], 201, True)
        results["agent, own node, no webhook (baseline)"] = timed(agent, pods["base"], 201)

    print(f"\nwebhook latency, {n} evictions per row, {cached} pods in the webhook's cache")
    print("server side (request read -> answer written, in the webhook process):")
    print("  " + line("allowed (own node)", server_allowed))
    print("  " + line("denied (other node)", server_denied))
    print("end to end (client POST pods/eviction -> response), real evictions:")
    for label, seconds in results.items():
        print("  " + line(label, seconds))
    own = statistics.median(results["agent, own node, webhook (allowed)"])
    base = statistics.median(results["agent, own node, no webhook (baseline)"])
    print(f"webhook adds {1000 * (own - base):.2f} ms at the median to an agent's eviction")
    dry = statistics.median(results["agent, own node, webhook, dry-run"])
    dry_base = statistics.median(results["agent, own node, no webhook, dry-run"])
    print(f"webhook adds {1000 * (dry - dry_base):.2f} ms at the median to a dry-run eviction")
    print(f"webhook calls for the admin's {n} evictions: {calls_for_admin}")
    return 0


def evict_dry(core: CoreV1Api, namespace: str, name: str) -> int:
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=namespace))
    try:
        core.create_namespaced_pod_eviction(name, namespace, body, dry_run="All")
    except ApiException as exc:
        return int(exc.status)
    return 201


if __name__ == "__main__":
    sys.exit(main())
