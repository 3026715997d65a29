"""The command line of ``oomguard guard``: its options (value types from ``wire.arguments``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from oomguard.monitor.actions.process_target import THROTTLED_PATIENCE
from oomguard.monitor.triggers.monitor_registry import guard_names
from oomguard.wire import arguments

MONITOR_NAMES = guard_names()  # the kinds that say how the guard runs them


def _monitor_list(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in MONITOR_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"monitors must be a comma-separated list of {', '.join(MONITOR_NAMES)}: {text!r}"
        )
    return names


def configure(parser: argparse.ArgumentParser) -> None:
    parser.usage = (
        "oomguard guard --memory-high SIZE [options] -- COMMAND [ARGS...]\n"
        "       oomguard guard --cgroup PATH --memory-high SIZE [options]"
    )
    parser.add_argument(
        "--memory-high",
        type=arguments.size,
        required=True,
        metavar="SIZE",
        help="memory.high and the target usage returns under (512Mi, 2G, bytes)",
    )
    parser.add_argument(
        "--memory-max",
        type=arguments.size,
        metavar="SIZE",
        help="memory.max, the hard limit (must be above --memory-high)",
    )
    parser.add_argument(
        "--buffer",
        type=arguments.size,
        metavar="SIZE",
        help="free this much below the target (default: 5%% of --memory-high)",
    )
    parser.add_argument(
        "--grace",
        type=arguments.seconds,
        default=5.0,
        metavar="SECONDS",
        help="SIGTERM -> SIGKILL delay for victims (default: 5)",
    )
    parser.add_argument(
        "--throttled-grace",
        type=arguments.seconds,
        default=THROTTLED_PATIENCE,
        metavar="SECONDS",
        help="a victim asleep this long in memory.high's throttling penalty, where its SIGTERM "
        "handler cannot run, is SIGKILLed before --grace ends (default: %(default)s; "
        "--grace or more: never sooner)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="FILE.json",
        help="write victims, memory.events and latencies here on exit",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="decide and log, but set no memory.high and signal nobody",
    )
    parser.add_argument(
        "--monitors",
        type=_monitor_list,
        default=MONITOR_NAMES,
        metavar="LIST",
        help=f"comma-separated monitors to run: {', '.join(MONITOR_NAMES)} "
        f"(default: {','.join(MONITOR_NAMES)})",
    )
    parser.add_argument(
        "--threshold-interval",
        type=arguments.positive_seconds,
        default=None,
        metavar="SECONDS",
        help="how often the threshold monitor polls usage (default: 0.1, or 1 as the "
        "backup of the event monitor when both run)",
    )
    parser.add_argument(
        "--no-memory-high",
        action="store_true",
        help="do not write memory.high (no throttling): --memory-high is only the "
        "threshold target; with --monitors threshold this is a plain polling guard",
    )
    parser.add_argument(
        "--metrics-port",
        type=arguments.port,
        default=0,
        metavar="PORT",
        help="serve Prometheus metrics on this port at /metrics (default 0: off)",
    )
    parser.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="address the metrics server listens on (default: 127.0.0.1)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--cgroup", metavar="PATH", help="guard this existing cgroup instead of running a command"
    )
    where.add_argument(
        "--parent",
        metavar="PATH",
        help="create the command's cgroup below this one (default: our own)",
    )
    parser.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        metavar="-- COMMAND [ARGS...]",
        help="the command to run in a new cgroup, after -- (not with --cgroup)",
    )
