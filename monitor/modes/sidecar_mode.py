"""``oomguard monitor --mode sidecar``: guard the worker processes of the sidecar's own pod.

For a pod running many worker processes (a Ray worker pod, a process pool) beside this
container, with ``shareProcessNamespace: true``:

1. find the pod cgroup (``--pod-cgroup``, ``POD_UID``, or our own cgroup's pod) and the
   workload container's cgroup in it (``sidecar_locate``), waiting up to
   ``--workload-wait`` for a workload that starts after us (a native sidecar), with
   ``/healthz`` up meanwhile so the kubelet's startupProbe lets the workload start;
2. split the workload cgroup into two leaves, ``oomguard-main`` and ``oomguard-workers``
   (cgroup v2's no-internal-process rule: once memory is enabled for its children, the
   workload cgroup itself may hold no process), moving the selected workers into the second;
3. set the workload container's ``memory.high`` to the pod's limit minus a reserve: on the
   container, not the workers leaf, as a worker's first pages stay charged to the main leaf
   it was born in, where a limit on the workers alone would not hold them back;
4. run the guard's loop (``modes.guard.Guard``) on the workers cgroup with a
   ``ProcessTarget``: newest workers are stopped first, the main process is never a
   candidate;
5. every ``--scan-interval`` move newly started workers (children of the main process are
   born in the main leaf) into the workers cgroup.

On exit the layout is undone: memory is withdrawn from the workload cgroup's children, every
process moves back, and both leaves are removed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import sys
import threading
from pathlib import Path

from oomguard.monitor.actions.process_target import THROTTLED_PATIENCE, KillRecord
from oomguard.monitor.feedback.http_endpoints import HttpEndpoints
from oomguard.monitor.feedback.logs import log_event
from oomguard.monitor.feedback.metrics_registry import GuardMetrics
from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupError, find_cgroup2_mount
from oomguard.monitor.kernel.procfs import ProcReader
from oomguard.monitor.modes.guard import Guard
from oomguard.monitor.modes.guard_cgroup import limits_applied, tree_pids
from oomguard.monitor.modes.process_guard import ProcessGuard, guard_settings
from oomguard.monitor.modes.sidecar_layout import SidecarSetupError, WorkerSelector
from oomguard.monitor.modes.sidecar_locate import (
    SidecarPlan,
    find_pod,
    locate_when_started,
    plan_in_pod,
)
from oomguard.monitor.modes.sidecar_split import (
    WorkersSplit,
    sweep_until_stopped,
    workers_split,
)
from oomguard.monitor.runtime.stop_signal import StopSignal
from oomguard.monitor.runtime.termination import Terminated, signals_raise_terminated
from oomguard.wire import arguments
from oomguard.wire.sizes import format_size

log = logging.getLogger("oomguard.sidecar")


def configure_sidecar(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sidecar mode (--mode sidecar)")
    group.add_argument(
        "--pod-cgroup", help="the pod's cgroup under the cgroup root (default: from POD_UID)"
    )
    group.add_argument(
        "--workload-cgroup",
        help="the workload container's cgroup (default: the pod's one busy container cgroup)",
    )
    group.add_argument(
        "--workers-match",
        metavar="REGEX",
        help="workers are processes whose command line matches (default: all but the main one)",
    )
    group.add_argument(
        "--main-pid",
        type=arguments.positive_int,
        metavar="PID",
        help="the workload's main process (default: its oldest process)",
    )
    group.add_argument(
        "--memory-high",
        type=arguments.size,
        metavar="SIZE",
        help="the workload container's memory.high (default: pod limit minus --reserve)",
    )
    group.add_argument(
        "--buffer",
        type=arguments.size,
        metavar="SIZE",
        help="free this much below the target (default: 5%%)",
    )
    group.add_argument(
        "--grace",
        type=arguments.seconds,
        default=5.0,
        metavar="SECONDS",
        help="SIGTERM -> SIGKILL seconds (default: %(default)s)",
    )
    group.add_argument(
        "--throttled-grace",
        type=arguments.seconds,
        default=THROTTLED_PATIENCE,
        metavar="SECONDS",
        help="a worker asleep this long in memory.high's throttling penalty is SIGKILLed "
        "before --grace ends (default: %(default)s; --grace or more: never sooner)",
    )
    group.add_argument(
        "--workload-wait",
        type=arguments.seconds,
        default=300.0,
        metavar="SECONDS",
        help="how long to wait for the workload container to start (default: %(default)s)",
    )
    group.add_argument(
        "--scan-interval",
        type=arguments.positive_seconds,
        default=0.2,
        metavar="SECONDS",
        help="seconds between moves of new workers into the workers cgroup",
    )


# ------------------------------------------------------------------ running


def _log_worker(victim: KillRecord) -> None:
    log_event(
        log,
        logging.WARNING,
        "worker stopped",
        pid=victim.pid,
        cmdline=" ".join(victim.cmdline)[:200],
        memory=format_size(victim.memory_bytes),
        signal=victim.signal,
        outcome=victim.outcome.value,
    )


def run_sidecar(args: argparse.Namespace, set_high: bool) -> int:
    stop = StopSignal()
    http = _waiting_http(args)
    try:
        with signals_raise_terminated(), contextlib.ExitStack() as undo:
            if http is not None:
                http.start()
                undo.callback(http.stop)
            try:
                plan = _plan(args, stop)
            except (SidecarSetupError, CgroupError, OSError, ValueError) as exc:
                print(f"oomguard monitor --mode sidecar: {exc}", file=sys.stderr, flush=True)
                return 2
            if plan is None:
                return 0
            return _guard(args, set_high, plan, stop, http, undo)
    except Terminated:
        return 0
    except KeyboardInterrupt:
        return 130
    except (CgroupError, SidecarSetupError) as exc:
        log_event(log, logging.ERROR, f"sidecar cannot guard: {exc}")
        return 1


def _plan(args: argparse.Namespace, stop: StopSignal) -> SidecarPlan | None:
    reader = ProcReader()
    root = Path(args.cgroup_root) if args.cgroup_root else find_cgroup2_mount()
    own, pod = find_pod(args, root)
    return locate_when_started(
        lambda: plan_in_pod(args, root, pod, own, reader), stop, args.workload_wait
    )


def _guard(
    args: argparse.Namespace,
    set_high: bool,
    plan: SidecarPlan,
    stop: StopSignal,
    http: HttpEndpoints | None,
    undo: contextlib.ExitStack,
) -> int:
    """Split the workload, set its memory.high and run the guard until stopped;
    everything set is undone through ``undo``."""
    pattern = re.compile(args.workers_match) if args.workers_match else None
    split = WorkersSplit(
        Cgroup(plan.root / plan.workload),
        WorkerSelector(pattern, args.main_pid),
        ProcReader(),
    )
    settings = guard_settings(
        plan.memory_high,
        None,
        args.buffer,
        args.grace,
        bool(args.dry_run),
        throttled_grace=args.throttled_grace,
        set_memory_high=set_high,
        # the runtime removes the workload's cgroup when the app exits: the end, not a fault
        target_may_end=True,
    )
    undo.enter_context(workers_split(split))
    workers = split.workers
    high = settings.memory_high_to_write
    # the line where it is measured: the whole container (see the module doc, step 3)
    undo.enter_context(limits_applied(split.workload, high, None))
    # limits, usage and memory.events where the line is: the whole container
    metrics = GuardMetrics("sidecar", split.workload)
    running = ProcessGuard(
        workers,
        settings,
        metrics,
        stop,
        _log_worker,
        thread_name="oomguard-sidecar",
        # the whole container: a worker's allocations before the sweep moves it stay
        # charged to the main leaf, and on the real node they alone outgrew the pod
        measured=split.workload,
    )
    errors: list[str] = []
    sweeper = threading.Thread(
        target=sweep_until_stopped,
        args=(split, stop, args.scan_interval, errors),
        name="oomguard-sweeper",
        daemon=True,
    )
    if http is not None:
        _guarding_routes(http, metrics, split, plan, running.guard, running.thread, errors)
    log_event(
        log,
        logging.INFO,
        "sidecar guarding workers",
        pod_cgroup=str(plan.pod),
        workload=str(plan.workload),
        workers=str(workers.path),
        main_pid=split.main_pid,
        moved=split.moved,
        pod_limit=format_size(plan.limit) if plan.limit else "max",
        memory_high=format_size(plan.memory_high),
        memory_high_set=high is not None,
    )
    running.start()
    sweeper.start()
    undo.callback(sweeper.join, 2.0)
    undo.callback(running.finish)
    running.wait()
    for error in errors:
        log_event(log, logging.ERROR, error)
    return 1 if errors else 0


WAITING = "waiting for the workload container to start"


def _waiting_http(args: argparse.Namespace) -> HttpEndpoints | None:
    """The server, up before the workload is found: a native sidecar's startupProbe on
    ``/healthz`` passes while it waits, so the kubelet starts the workload after it;
    ``/readyz`` says not ready until the guard runs."""
    if not args.http_port:
        return None
    http = HttpEndpoints(args.http_host, args.http_port)
    http.add_check("/healthz", lambda: (True, WAITING))
    http.add_check("/readyz", lambda: (False, WAITING))
    return http


def _guarding_routes(
    http: HttpEndpoints,
    metrics: GuardMetrics,
    split: WorkersSplit,
    plan: SidecarPlan,
    guard: Guard,
    loop: threading.Thread,
    errors: list[str],
) -> None:
    http.add_route("/metrics", metrics.route)
    http.add_check("/healthz", lambda: (loop.is_alive() and not errors, "; ".join(errors[-3:])))
    http.add_check("/readyz", lambda: (loop.is_alive(), "guard loop not running"))

    def status() -> tuple[int, str, bytes]:
        try:
            usage: int | None = split.workers.working_set()
            workers = tree_pids(split.workers)
        except CgroupError:
            usage, workers = None, []
        body = {
            "mode": "sidecar",
            "pod_cgroup": str(plan.pod),
            "cgroup": str(split.workers.path),
            "memory_high": plan.memory_high,
            "pod_limit": plan.limit,
            "usage": usage,
            "main_pid": split.main_pid,
            "workers": workers,
            "moved": split.moved,
            "decisions": len(guard.decisions),
            "errors": (guard.errors + errors)[-10:],
        }
        return 200, "application/json", json.dumps(body).encode()

    http.add_route("/status", status)
