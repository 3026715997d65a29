"""Wiring of the node agent: Kubernetes client, pod watch, NodeMemoryReserve watch and status,
evictor, HTTP endpoints (the agent builds its monitors from its settings).

Kept apart from ``node_command`` (argument parsing and startup checks) and ``node_agent``
(the loop) so tests can build the same composition against a real API server.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oomguard.monitor.actions.cgroup_kill import kill_method
from oomguard.monitor.actions.metered_eviction_api import MeteredEvictionApi
from oomguard.monitor.actions.pod_evictor import (
    EVICTION_REQUEST_TIMEOUT,
    KubernetesEvictionApi,
    PodEvictor,
)
from oomguard.monitor.decision.rate_limit import TokenBucket
from oomguard.monitor.feedback.api_health_metrics import ApiHealthMetrics
from oomguard.monitor.feedback.http_endpoints import HttpEndpoints
from oomguard.monitor.feedback.kube_events import KubeEventPoster
from oomguard.monitor.feedback.logs import log_event
from oomguard.monitor.feedback.memory_high_collector import MemoryHighCollector
from oomguard.monitor.feedback.metrics_registry import GuardMetrics
from oomguard.monitor.feedback.node_state_collector import NodeStateCollector
from oomguard.monitor.feedback.pod_view_collector import PodViewCollector
from oomguard.monitor.kernel.cgroupfs import Cgroup
from oomguard.monitor.kernel.meminfo import parse_meminfo
from oomguard.monitor.kube.node_reserve import (
    KubernetesReserveSource,
    NodeReserveStatusWriter,
    NodeReserveWatcher,
)
from oomguard.monitor.kube.pod_cgroups import KubepodsLocation
from oomguard.monitor.kube.pod_watch import KubernetesPodSource, PodWatch
from oomguard.monitor.kube.watch_health import WatchName
from oomguard.monitor.modes.node_agent import AgentOptions, NodeAgent
from oomguard.monitor.modes.reserve_status_reporter import ReserveStatusReporter
from oomguard.monitor.modes.systemd_memory_high import SystemdDBus
from oomguard.monitor.runtime.stop_signal import StopSignal
from oomguard.monitor.runtime.termination import signals_set_stop
from oomguard.monitor.triggers.trigger import Monitor
from oomguard.wire.node_settings import NodeSettings, default_node_settings

log = logging.getLogger("oomguard.node")


def api_client(kubeconfig: str | None) -> Any:
    from kubernetes import client, config

    if kubeconfig:
        return config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    config.load_incluster_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


def initial_settings(args: argparse.Namespace) -> NodeSettings:
    if args.node_memory is not None:
        memory = int(args.node_memory)
    else:
        memory = parse_meminfo(Path("/proc/meminfo").read_bytes()).mem_total
    settings = default_node_settings(args.node_name, memory)
    if args.reserve is not None:
        settings = settings.with_reserve(int(args.reserve))
    if args.dry_run:
        from dataclasses import replace

        settings = replace(settings, dry_run=True)
    return settings


@dataclass
class AgentParts:
    agent: NodeAgent
    watch: PodWatch
    http: HttpEndpoints | None
    reserve_watch: NodeReserveWatcher | None = None
    status_reporter: ReserveStatusReporter | None = None


def build_agent(
    core_api: Any,
    options: AgentOptions,
    settings: NodeSettings,
    monitors: list[Monitor] | None = None,
    http: HttpEndpoints | None = None,
    custom_api: Any | None = None,
    status_intervals: tuple[float, float] = (2.0, 60.0),
    eviction_timeout: float = EVICTION_REQUEST_TIMEOUT,
    status_local_only: bool = True,
) -> AgentParts:
    """``custom_api`` (a CustomObjectsApi) turns on the NodeMemoryReserve watch and status;
    ``monitors=None`` lets the agent build them from its settings."""
    metrics = GuardMetrics("node")
    watched = [WatchName.PODS] if custom_api is None else [WatchName.PODS, WatchName.RESERVE]
    api_health = ApiHealthMetrics(metrics.registry, watched)
    watch = PodWatch(KubernetesPodSource(core_api), settings.node_name, health=api_health)
    events = KubeEventPoster(core_api, settings.node_name)
    eviction = settings.eviction
    evictor = PodEvictor(
        MeteredEvictionApi(KubernetesEvictionApi(core_api, eviction_timeout), api_health),
        events,
        TokenBucket(
            per_minute=eviction.max_evictions_per_minute,
            burst=eviction.max_evictions_per_minute,
            now=time.monotonic(),
        ),
        grace_period_seconds=eviction.grace_period_seconds,
        dry_run=settings.dry_run,
        kill_rate=TokenBucket(  # cgroup kills, at the evictions' rate
            per_minute=eviction.max_evictions_per_minute,
            burst=eviction.max_evictions_per_minute,
            now=time.monotonic(),
        ),
    )
    kubepods = Cgroup(options.cgroup_root / options.kubepods.path)
    metrics.watch_cgroup(kubepods)
    agent = NodeAgent(options, settings, watch, evictor, monitors, metrics=metrics)
    metrics.registry.register(NodeStateCollector(agent))
    metrics.registry.register(MemoryHighCollector(agent.limit))
    metrics.registry.register(PodViewCollector(agent))
    reserve_watch = reporter = None
    if custom_api is not None:
        reserve_watch = NodeReserveWatcher(
            KubernetesReserveSource(custom_api),
            settings.node_name,
            settings.node_memory_bytes,
            on_change=agent.apply_reserve,
            health=api_health,
        )
        reporter = ReserveStatusReporter(
            agent.report,
            NodeReserveStatusWriter(custom_api, settings.node_name),
            min_interval=status_intervals[0],
            refresh_interval=status_intervals[1],
        )
    if http is not None:
        http.add_route("/metrics", metrics.route)
        http.add_check("/healthz", agent.healthy)
        http.add_check(
            "/readyz",
            lambda: (watch.synced.is_set(), "" if watch.synced.is_set() else "pods not listed yet"),
        )
        facts = {"kill_method": kill_method(kubepods).value}  # cgroup.kill needs Linux 5.14
        http.add_route(
            "/status",
            lambda: (200, "application/json", json.dumps(agent.status() | facts).encode()),
            local_only=status_local_only,  # pod names: not for the whole cluster by default
        )
    return AgentParts(agent, watch, http, reserve_watch, reporter)


def run_parts(parts: AgentParts, stop: StopSignal) -> None:
    """Run the watches, the status reporter and the agent until ``stop``; restores
    memory.high on the way out."""
    threads = [threading.Thread(target=parts.watch.run, args=(stop,), name="pod-watch")]
    if parts.reserve_watch is not None:
        threads.append(
            threading.Thread(target=parts.reserve_watch.run, args=(stop,), name="reserve-watch")
        )
    if parts.status_reporter is not None:
        threads.append(
            threading.Thread(
                target=parts.status_reporter.run,
                args=(stop, parts.agent.changes),
                name="reserve-status",
            )
        )
    for thread in threads:
        thread.daemon = True
        thread.start()
    if parts.http is not None:
        parts.http.start()
    try:
        # the reserve decides memory.high: avoid setting the defaults first if we can
        if parts.reserve_watch is not None and stop.wait_for(parts.reserve_watch.synced, 10):
            parts.agent.apply_reserve(parts.reserve_watch.current())
        stop.wait_for(parts.watch.synced, 30)
        if not stop.is_set():  # a SIGTERM during set-up: nothing more to set, only to undo
            parts.agent.assert_memory_high()
            parts.agent.run(stop)
    finally:
        stop.set()
        parts.watch.stop()
        if parts.reserve_watch is not None:
            parts.reserve_watch.stop()
        parts.agent.restore_memory_high()
        if parts.http is not None:
            parts.http.stop()
        for thread in threads:
            thread.join(5)


def run_agent(
    args: argparse.Namespace, root: Path, location: KubepodsLocation, set_high: bool
) -> int:
    from kubernetes.client import CoreV1Api

    settings = initial_settings(args)
    self_key = (
        f"{args.pod_namespace}/{args.pod_name}" if args.pod_name and args.pod_namespace else None
    )
    options = AgentOptions(
        cgroup_root=root,
        kubepods=location,
        self_uid=args.pod_uid,
        self_key=self_key,
        margin_bytes=int(args.margin),
        set_memory_high=set_high,
        tick_seconds=args.tick,
        force_dry_run=bool(args.dry_run),
        state_dir=Path(args.state_dir) if args.state_dir else None,
        systemd_dbus=SystemdDBus(args.systemd_dbus),
        systemd_socket=args.systemd_socket,
    )
    from kubernetes.client import CustomObjectsApi

    client = api_client(args.kubeconfig)
    core = CoreV1Api(client)
    custom = None if args.no_reserve_watch else CustomObjectsApi(client)
    http = HttpEndpoints(args.http_host, args.http_port)
    parts = build_agent(
        core,
        options,
        settings,
        http=http,
        custom_api=custom,
        eviction_timeout=args.eviction_timeout,
        status_local_only=not args.serve_status_to_cluster,
    )
    log_event(
        log,
        logging.INFO,
        "node agent starting",
        node=settings.node_name,
        kubepods=str(root / location.path),
        driver=location.driver.value,
        reserve=settings.reserve_bytes,
        dry_run=settings.dry_run,
        kill_method=kill_method(Cgroup(root / location.path)).value,
    )
    stop = StopSignal()
    # a signal sets stop (never raises mid-step): the loop ends at its next wake-up, then
    # memory.high is restored in order, and a second SIGTERM cannot cut that short
    with signals_set_stop(stop) as received:
        run_parts(parts, stop)
    if received:
        log_event(log, logging.INFO, "node agent stopped", signal=signal.Signals(received[0]).name)
    return 0
