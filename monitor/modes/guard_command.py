"""`oomguard guard`: run a command (or watch an existing cgroup) under newest-first guarding.

    oomguard guard --memory-high 200Mi --memory-max 300Mi -- python3 pool.py
    oomguard guard --cgroup /sys/fs/cgroup/batch --memory-high 2Gi

The command runs in a new cgroup below oomguard's own (see guard_cgroup for the
no-internal-process rule). Its own process is protected; everything it starts is a
candidate, newest first. oomguard exits with the command's status (128+N when a signal N
ended it) and undoes every change it made on every exit path: SIGTERM, SIGINT and SIGHUP
are forwarded to the command, and if it is not gone within the grace period the whole
cgroup is killed; then limits are restored and the cgroup is removed.

``--dry-run`` observes only: it creates the cgroup and applies ``--memory-max`` (the
environment the command was asked to run in) but sets no memory.high and signals nobody;
the threshold monitor notices usage over the target and the log and report say who would
have been stopped. Without memory.high there is no throttling, so the kernel behaves as
if oomguard were absent.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable

from oomguard.monitor.actions.process_target import KillRecord
from oomguard.monitor.feedback.logs import log_event, setup_logging
from oomguard.monitor.feedback.metrics_endpoint import MetricsEndpointError, metrics_endpoint
from oomguard.monitor.feedback.metrics_registry import GuardMetrics
from oomguard.monitor.feedback.report import write_report
from oomguard.monitor.kernel.cgroupfs import CgroupError
from oomguard.monitor.modes.guard import GuardSettings
from oomguard.monitor.modes.guard_arguments import configure as configure
from oomguard.monitor.modes.guard_cgroup import (
    created_cgroup,
    limits_applied,
    own_cgroup,
    resolve_cgroup,
)
from oomguard.monitor.modes.guarded_command import (
    empty_and_remove_processes,
    spawn_into,
    wait_for_command,
)
from oomguard.monitor.modes.process_guard import (
    ProcessGuard,
    events_or_empty,
    guard_settings,
    run_report,
    victim_recorder,
)
from oomguard.monitor.runtime import kernel_release
from oomguard.monitor.runtime.signal_relay import SignalRelay as SignalRelay
from oomguard.monitor.runtime.stop_signal import StopSignal
from oomguard.wire.sizes import format_size

log = logging.getLogger("oomguard.guard")

EXIT_USAGE = 2
EXIT_SETUP_FAILED = 125  # like `env`/`timeout`: oomguard itself failed, the command did not run


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_format)
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    problem = _check_arguments(args, command)
    if problem:
        print(f"oomguard guard: {problem}", file=sys.stderr)
        return EXIT_USAGE
    settings = guard_settings(
        args.memory_high,
        args.memory_max,
        args.buffer,
        args.grace,
        args.dry_run,
        throttled_grace=args.throttled_grace,
        threshold_interval=args.threshold_interval,
        monitor_names=args.monitors,
        set_memory_high=not args.no_memory_high,
    )
    try:
        # Installed before anything is changed: a signal at any moment (even during set-up)
        # ends in the undo path instead of killing oomguard with its changes in place.
        with SignalRelay.installed() as relay:
            if args.cgroup:
                return _guard_existing(args, settings, relay)
            return _guard_command(args, settings, command, relay)
    except (CgroupError, MetricsEndpointError) as exc:
        log_event(log, logging.ERROR, f"cannot guard: {exc}")
        return EXIT_SETUP_FAILED


def _check_arguments(args: argparse.Namespace, command: list[str]) -> str | None:
    if args.cgroup and command:
        return "give either --cgroup PATH or -- COMMAND, not both"
    if not args.cgroup and not command:
        return "missing -- COMMAND [ARGS...] (or --cgroup PATH)"
    if args.memory_max is not None and args.memory_max <= args.memory_high:
        return (
            f"--memory-max ({format_size(args.memory_max)}) must be above --memory-high "
            f"({format_size(args.memory_high)})"
        )
    if (args.dry_run or args.no_memory_high) and "threshold" not in args.monitors:
        flag = "--dry-run" if args.dry_run else "--no-memory-high"
        return f"{flag} sets no memory.high, so it needs the threshold monitor (--monitors)"
    if (
        not args.dry_run
        and not args.no_memory_high
        and (kernel_version() < kernel_release.MIN_MEMORY_HIGH_KERNEL)
    ):
        return (
            f"kernel {os.uname().release} is older than 5.9, where memory.high can livelock "
            "an allocator; refusing to set it (use --dry-run to observe only, or "
            "--no-memory-high --monitors threshold to poll)"
        )
    return None


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """This kernel's (major, minor); (0, 0) when unreadable, which counts as too old."""
    try:
        return kernel_release.kernel_version(release or None)
    except ValueError:
        return (0, 0)


def _guard_command(
    args: argparse.Namespace, settings: GuardSettings, command: list[str], relay: SignalRelay
) -> int:
    parent = resolve_cgroup(args.parent) if args.parent else own_cgroup()
    with contextlib.ExitStack() as undo:
        cgroup = undo.enter_context(created_cgroup(parent, f"oomguard-{os.getpid()}"))
        high = settings.memory_high_to_write
        undo.enter_context(limits_applied(cgroup, high, settings.memory_max))
        metrics = GuardMetrics("guard", cgroup)
        undo.enter_context(metrics_endpoint(metrics, args.metrics_host, args.metrics_port))
        log_event(
            log,
            logging.INFO,
            "guarding command",
            cgroup=str(cgroup.path),
            memory_high=format_size(settings.memory_high),
            memory_max=format_size(settings.memory_max) if settings.memory_max else "max",
            dry_run=settings.dry_run,
            command=command,
        )
        events_start = cgroup.memory_events().counters
        started = time.monotonic()
        if relay.received:
            log_event(log, logging.INFO, "signalled during set-up; not starting the command")
            return 128 + relay.received[0]
        try:
            child = spawn_into(cgroup, command)
        except OSError as exc:
            log_event(log, logging.ERROR, f"cannot start {command[0]}: {exc}")
            return 127 if isinstance(exc, FileNotFoundError) else 126
        relay.forward_to(child)
        stop = StopSignal()
        undo.callback(stop.close)
        running = ProcessGuard(
            cgroup, settings, metrics, stop, _log_record, protected=frozenset({child.pid})
        )
        running.start()
        try:
            status = wait_for_command(child, relay.received, relay.stop, settings.grace, cgroup)
        finally:
            running.finish()
            empty_and_remove_processes(cgroup)
            events_final = events_or_empty(cgroup)
        log_event(
            log,
            logging.INFO,
            "command exited",
            status=status,
            victims=len([r for r in running.target.records if r.signal]),
            oom_kill=events_final.get("oom_kill"),
        )
        if args.report:
            write_report(
                args.report,
                running.report(
                    command=tuple(command),
                    exit_status=status,
                    started_at=started,
                    events_start=events_start,
                    events_final=events_final,
                ),
            )
    return status


_report = run_report  # its name before process_guard.py


def _guard_existing(args: argparse.Namespace, settings: GuardSettings, relay: SignalRelay) -> int:
    cgroup = resolve_cgroup(args.cgroup)
    high = settings.memory_high_to_write
    with contextlib.ExitStack() as undo:
        cgroup.require_memory_controller()
        undo.enter_context(limits_applied(cgroup, high, settings.memory_max))
        metrics = GuardMetrics("guard", cgroup)
        undo.enter_context(metrics_endpoint(metrics, args.metrics_host, args.metrics_port))
        log_event(
            log,
            logging.INFO,
            "guarding cgroup",
            cgroup=str(cgroup.path),
            memory_high=format_size(settings.memory_high),
            dry_run=settings.dry_run,
        )
        events_start = cgroup.memory_events().counters
        started = time.monotonic()
        running = ProcessGuard(cgroup, settings, metrics, relay.stop, _log_record)
        try:
            running.start()
            running.wait()
        finally:
            running.finish()
        log_event(log, logging.INFO, "stopped guarding", signal=relay.received[:1])
        if args.report:
            write_report(
                args.report,
                running.report(
                    command=None,
                    exit_status=None,
                    started_at=started,
                    events_start=events_start,
                    events_final=events_or_empty(cgroup),
                ),
            )
    return 0


def _log_record(record: KillRecord) -> None:
    latency = record.detection_to_signal_seconds
    log_event(
        log,
        logging.WARNING if record.signal else logging.INFO,
        "victim " + record.outcome.value,
        pid=record.pid,
        cmdline=list(record.cmdline),
        memory=format_size(record.memory_bytes),
        signal=record.signal,
        detection_to_signal_ms=None if latency is None else round(latency * 1000, 3),
        detection_to_exit_ms=None
        if record.detection_to_exit_seconds is None
        else round(record.detection_to_exit_seconds * 1000, 3),
    )


def _recorder(metrics: GuardMetrics) -> Callable[[KillRecord], None]:
    """ProcessTarget's ``on_record`` for ``oomguard guard``: log the victim, count it."""
    return victim_recorder(metrics, _log_record)
