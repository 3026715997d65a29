"""The chart as it ships, guarding real pods on a real node (kubelet, containerd 2.x, runc,
CNI, kube-proxy) inside the real-kernel VM.

The tests run in file order against one node and one release (``conftest.py``): install,
a storm the agent must stop newest-first, a live upgrade, an uninstall that restores
kubepods, and the same storm with the chart gone (the control: the kernel OOM-kills).
"""

from __future__ import annotations

import json
import math
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from chart_release import (
    CHART,
    MI,
    NAMESPACE,
    RELEASE,
    UPGRADED_RESERVE_MI,
    agent_logs,
    describe,
    helm,
    image_values,
    kubepods_current,
    kubepods_event,
    kubepods_high,
    kubepods_max,
    node_memory_bytes,
    operator_logs,
    pods_ready,
    reserve_values,
)
from conftest import RESERVE_MI, Release
from k8s_helpers import create_namespace, wait_for
from kubernetes.client import CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException
from node_bed import NODE_NAME, PYTHON_IMAGE, Node, progress
from storm_pods import (
    PRESSURE_TAINT,
    Ending,
    StormPlan,
    ending,
    evicted_without_a_decision,
    is_final,
    newest_first_violations,
    parse_decisions,
)

pytestmark = [pytest.mark.kernel(memory="7G"), pytest.mark.node, pytest.mark.timeout(2400)]

# Large enough that a storm is about ten pods (each pod's start costs seconds under emulation)
STORM_POD_MIB = 512
EVICTED_SERIES = 'sum(oomguard_actions_total{outcome="evicted"})'
DECISION_TO_ACTION_MEAN = (
    "sum(oomguard_decision_to_action_seconds_sum) / sum(oomguard_decision_to_action_seconds_count)"
)


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


def storm_plan(namespace: str, headroom_bytes: int) -> StormPlan:
    """Enough pods to pass kubepods' memory.max by two pods' worth."""
    return StormPlan(
        namespace=namespace,
        count=math.ceil(headroom_bytes / (STORM_POD_MIB * MI)) + 2,
        size_mib=STORM_POD_MIB,
        image=PYTHON_IMAGE,
        host_dir=f"/run/oomguard-storm/{namespace}",
    )


def evicted_names(core: CoreV1Api, namespace: str) -> set[str]:
    events = core.list_namespaced_event(namespace, field_selector="reason=OOMGuardEviction")
    return {str(e.involved_object.name) for e in events.items}


def pressure_tainted(core: CoreV1Api) -> bool:
    node = core.read_node(NODE_NAME)
    return any(t.key == PRESSURE_TAINT for t in node.spec.taints or [])


@dataclass(frozen=True)
class StormRun:
    """How each storm pod ended, and the times "newest first" is judged by (epoch seconds)."""

    plan: StormPlan
    endings: list[Ending]
    running_since: list[float]  # when the test saw pod i Running (or already past it)
    released_at: float  # when the pods were told to finish


def start_storm_pods(core: CoreV1Api, plan: StormPlan) -> list[float]:
    """Create the plan's pods one after another, each once the one before runs (so age order
    is creation order); say when each was seen Running."""
    running_since: list[float] = []
    for i in range(plan.count):
        core.create_namespaced_pod(plan.namespace, plan.manifest(i))
        name = plan.name(i)
        wait_for(f"{name} running", lambda n=name: started(core, plan.namespace, n), timeout=300)
        running_since.append(time.time())
        progress(f"{plan.namespace}: {name} of {plan.count} started")
    return running_since


def storm_states(core: CoreV1Api, plan: StormPlan) -> list[dict[str, Any] | None]:
    """Each storm pod's last state, None once it is gone."""
    states: list[dict[str, Any] | None] = []
    for i in range(plan.count):
        try:
            pod = core.read_namespaced_pod(plan.name(i), plan.namespace)
            states.append(core.api_client.sanitize_for_serialization(pod))
        except ApiException as exc:
            if exc.status != 404:
                raise
            states.append(None)
    return states


def full_or_final(plan: StormPlan, states: list[dict[str, Any] | None]) -> bool:
    """The storm's peak: every pod holds all its memory (its ``.full`` file) or is final."""
    return all(
        is_final(state) or Path(plan.full_file(i)).exists() for i, state in enumerate(states)
    )


def run_storm(core: CoreV1Api, namespace: str, taint_seen: list[bool] | None = None) -> StormRun:
    """Start the storm's pods; once every pod is full or final, let them finish; say how
    each ended."""
    create_namespace(core, namespace)
    plan = storm_plan(namespace, kubepods_max() - kubepods_current())
    running_since = start_storm_pods(core, plan)

    def last_states() -> list[dict[str, Any] | None]:
        if taint_seen is not None and not taint_seen and pressure_tainted(core):
            taint_seen.append(True)
            progress(f"{namespace}: the node carries {PRESSURE_TAINT}")
        return storm_states(core, plan)

    wait_for(
        "every storm pod full (holding all its memory) or final",
        lambda: full_or_final(plan, last_states()),
        timeout=900,
        interval=2,
    )
    released_at = time.time()
    Path(plan.release_file).touch()
    progress(f"{namespace}: every pod full or final; released")

    def all_final() -> list[dict[str, Any] | None] | None:
        states = last_states()
        return states if all(is_final(s) for s in states) else None

    states = wait_for(
        "every storm pod completed, evicted or killed", all_final, timeout=600, interval=2
    )
    evicted = evicted_names(core, namespace)
    endings = [ending(s, plan.name(i) in evicted) for i, s in enumerate(states)]
    progress(f"{namespace}: " + ", ".join(f"{i}={e.value}" for i, e in enumerate(endings)))
    return StormRun(plan, endings, running_since, released_at)


def started(core: CoreV1Api, namespace: str, name: str) -> bool:
    """Running, or already past it (a pod the guard stopped early counts as started)."""
    try:
        pod = core.read_namespaced_pod(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return pod.status.phase in ("Running", "Succeeded", "Failed")


def agent_service_targets(release: Release) -> list[str] | None:
    """``ip:port`` of every ready endpoint of the chart's agent metrics Service, from its
    EndpointSlices on the real apiserver; None while there is none."""
    from kubernetes.client import DiscoveryV1Api

    services = release.core.list_namespaced_service(
        NAMESPACE, label_selector="app.kubernetes.io/component=agent"
    ).items
    if not services:
        return None
    slices = (
        DiscoveryV1Api(release.node.cp.api_client)
        .list_namespaced_endpoint_slice(
            NAMESPACE, label_selector=f"kubernetes.io/service-name={services[0].metadata.name}"
        )
        .items
    )
    targets = [
        f"{address}:{port.port}"
        for endpoint_slice in slices
        for endpoint in endpoint_slice.endpoints or []
        if endpoint.conditions is None or endpoint.conditions.ready is not False
        for address in endpoint.addresses
        for port in endpoint_slice.ports or []
    ]
    return targets or None


@pytest.fixture
def prometheus(release: Release, tmp_path: Path) -> Iterator[str]:
    """Debian's Prometheus scraping the agent pod over the pod network at the addresses the
    chart's metrics Service lists. Debian builds Prometheus without Kubernetes discovery
    (``kubernetes_sd_configs`` is refused), so the test reads the Service's EndpointSlices
    from the apiserver and hands them over as file discovery: the same targets, found the
    same way, one step earlier."""
    targets = wait_for(
        "the agent's metrics Service endpoints", lambda: agent_service_targets(release), timeout=600
    )
    discovered = tmp_path / "agent-targets.json"
    discovered.write_text(json.dumps([{"targets": targets, "labels": {"service": "agent"}}]))
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                # Prometheus' default timeout: at 2 s, scrapes of the agent timed out while
                # the storm filled the node (emulated CPUs shared with the storm's pods)
                "global": {"scrape_interval": "10s", "scrape_timeout": "10s"},
                "scrape_configs": [
                    {
                        "job_name": "oomguard-agent",
                        "file_sd_configs": [{"files": [str(discovered)]}],
                    }
                ],
            }
        )
    )
    port = 19090
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{port}"
    try:
        wait_for("prometheus ready", lambda: prometheus_ready(api, process), timeout=120)
        yield api
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
        print((tmp_path / "prometheus.log").read_text(errors="replace")[-3000:])


def prometheus_ready(api: str, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"prometheus exited with {process.returncode}")
    try:
        with urllib.request.urlopen(f"{api}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def prometheus_value(api: str, promql: str) -> float | None:
    url = f"{api}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        result = json.load(response)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def scrape_report(api: str) -> str:
    """Prometheus' view of each target (health, last error, how long the last scrape took)
    and a direct fetch of each target's /metrics, timed: what to read when a value is missing.
    """
    with urllib.request.urlopen(f"{api}/api/v1/targets", timeout=5) as response:
        active = json.load(response)["data"]["activeTargets"]
    lines = []
    for target in active:
        url = target["scrapeUrl"]
        lines.append(
            f"{url}: {target['health']}, last scrape {target['lastScrapeDuration']:.2f} s, "
            f"error {target['lastError']!r}"
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                size = len(response.read())
            lines.append(f"  direct GET: {size} bytes in {time.monotonic() - started:.2f} s")
        except OSError as error:
            lines.append(f"  direct GET failed after {time.monotonic() - started:.2f} s: {error}")
    return "\n".join(lines) or "prometheus has no targets"


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


AGENT_SELECTOR = "app.kubernetes.io/component=agent"


def agent_restarts(core: CoreV1Api) -> int:
    """Restarts of the agent's containers, over its pods."""
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=AGENT_SELECTOR).items
    return sum(c.restart_count for p in pods for c in (p.status.container_statuses or []))


def test_storm_is_stopped_newest_first_and_the_oldest_pods_complete(
    release: Release, prometheus: str
) -> None:
    core = release.core
    try:
        wait_for("the node's reserve enforced", lambda: reserve_status(release.node), timeout=300)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{enforcement_report(release)}") from None
    oom_kills = kubepods_event("oom_kill")
    restarts = agent_restarts(core)
    taint_seen: list[bool] = []
    storm = run_storm(core, "storm-guarded", taint_seen)
    endings = storm.endings
    try:
        assert kubepods_event("oom_kill") == oom_kills, f"kernel OOM kills in kubepods: {endings}"
        # a restarted agent gives kubepods back (memory.high max) until it is up again, and
        # its counters start from 0: the guard must live through the storm it stops
        assert agent_restarts(core) == restarts, (
            f"the agent restarted during the storm\n{describe(core, AGENT_SELECTOR)}"
        )
        evicted = endings.count(Ending.EVICTED)
        assert evicted > 0, f"the storm passed memory.max yet nothing was evicted: {endings}"
        assert Ending.OOM_KILLED not in endings and Ending.OTHER not in endings, endings
        # newest first at each decision, among the pods alive then: a pod created after the
        # first evictions may outlive older pods evicted before it existed
        decisions = parse_decisions(agent_logs(core, lines=1_000_000))
        unjudged = evicted_without_a_decision(storm.plan, endings, decisions)
        assert not unjudged, f"evicted, but no decision in the agent's log names them: {unjudged}"
        violations = newest_first_violations(
            storm.plan, decisions, storm.running_since, storm.released_at
        )
        assert not violations, f"an older pod went before a newer one: {violations}, {endings}"
        assert endings[0] is Ending.COMPLETED, endings
        try:
            scraped = wait_for(
                "the evictions scraped through the chart's Service",
                lambda: (
                    v
                    if (v := prometheus_value(prometheus, EVICTED_SERIES)) and v >= evicted
                    else None
                ),
                timeout=120,
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{scrape_report(prometheus)}") from None
        assert scraped == evicted
        mean = prometheus_value(prometheus, DECISION_TO_ACTION_MEAN)
        progress(f"agent in its pod: decision -> eviction answer, mean {mean} s")
        # point 4: while it evicts, new pods (a Deployment's replacements) are kept off the
        # node by the operator's taint; it goes once the cooldown after the episode passed
        assert taint_seen, f"no {PRESSURE_TAINT} taint while the agent evicted"
        wait_for(
            "the memory-pressure taint gone after the cooldown",
            lambda: not pressure_tainted(core),
            timeout=300,
        )
    except AssertionError:
        print(agent_logs(core))
        raise


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
    core, namespace = release.core, "storm-unguarded"
    assert kubepods_high() == release.high_before, "kubepods still carries a guard's line"
    oom_kills = kubepods_event("oom_kill")
    create_namespace(core, namespace)
    plan = storm_plan(namespace, kubepods_max() - kubepods_current())

    def oom_killed() -> bool:
        return kubepods_event("oom_kill") > oom_kills

    for i in range(plan.count):
        core.create_namespaced_pod(namespace, plan.manifest(i))
    progress(f"{namespace}: {plan.count} pods created")
    # the proof is the first kernel OOM kill; without one the storm runs until every pod is
    # full or final, and the test fails on its assertion below
    wait_for(
        "a kernel OOM kill in kubepods, or every storm pod full or final",
        lambda: oom_killed() or full_or_final(plan, storm_states(core, plan)),
        timeout=900,
        interval=2,
    )
    killed, evicted = oom_killed(), evicted_names(core, namespace)
    progress(f"{namespace}: kernel OOM kills in kubepods: {kubepods_event('oom_kill') - oom_kills}")
    # gone, and their memory with them, before the sidecar tests need it (grace 1, not 0:
    # 0 drops the pods from the API before the kubelet has stopped them)
    core.delete_collection_namespaced_pod(namespace, grace_period_seconds=1)
    wait_for(
        "the storm's pods gone",
        lambda: not core.list_namespaced_pod(namespace).items,
        timeout=300,
        interval=2,
    )
    assert not evicted, f"something evicted {sorted(evicted)} with no guard installed"
    assert killed, "the storm passed kubepods memory.max without a kernel OOM kill"
