"""``oomguard status``: what the node agent guards and who would go first, as a table or JSON.

Asks the running agent (``/status`` on its HTTP port, the same server as /healthz), so the
counters and eviction order are the agent's own, not a second guess.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

from oomguard.monitor.feedback.http_endpoints import AGENT_PORT
from oomguard.wire.sizes import format_size


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", default=f"http://127.0.0.1:{AGENT_PORT}/status", help="the agent's /status"
    )
    parser.add_argument("--json", action="store_true", help="print the raw JSON")


def _size(value: Any) -> str:
    return "-" if value is None else format_size(int(value))


def _settings_lines(settings: dict[str, Any] | None) -> list[str]:
    if not settings:
        return []
    line = f"settings:      {settings.get('source')}, reserve {_size(settings.get('reserve'))}"
    if settings.get("generation") is not None:
        line += f", generation {settings['generation']}"
    lines = [line]
    if settings.get("error"):
        lines.append(f"  not applied:  {settings['error']}")
    return lines


def _monitor_lines(monitors: dict[str, Any] | None) -> list[str]:
    if not monitors:
        return []
    lines = [f"monitors:      {', '.join(monitors.get('running') or []) or 'none'}"]
    lines += [f"  note:         {note}" for note in monitors.get("notes") or []]
    lines += [f"  failed:       {failure}" for failure in monitors.get("failures") or []]
    return lines


def _pod_view_lines(view: dict[str, Any] | None) -> list[str]:
    """Blind spots in the pod view: said only when there is one."""
    if not view:
        return []
    lines = []
    if view.get("blind"):
        kill_only = view.get("kill_only") or []
        lines.append(
            "pod view:      blind (never listed, or disconnected for long): "
            f"{len(kill_only)} pod(s) known from their cgroup alone, kill-only candidates"
        )
    unmatched = view.get("unmatched_cgroups") or []
    if unmatched:
        lines.append(
            f"  no pod for:   {len(unmatched)} pod cgroup(s); relists asked: "
            f"{view.get('relists_asked', 0)}"
        )
    return lines


def render_table(status: dict[str, Any]) -> str:
    lines = [
        f"node:          {status.get('node')} ({status.get('mode')} mode)",
        f"guarded:       {status.get('cgroup')} ({status.get('driver')} driver)",
        f"memory.high:   {_size(status.get('memory_high'))}"
        + ("" if status.get("memory_high_set") else " (not set: kernel < 5.9)"),
        f"target:        {_size(status.get('target'))}",
        f"usage:         {_size(status.get('usage'))}",
        f"dry run:       {'yes' if status.get('dry_run') else 'no'}",
        *_settings_lines(status.get("settings")),
        *_monitor_lines(status.get("monitors")),
        f"API server:    {'connected' if status.get('api_connected') else 'unreachable'}",
        *_pod_view_lines(status.get("pod_view")),
        "counters:      "
        + ", ".join(f"{k}={v}" for k, v in sorted((status.get("counters") or {}).items())),
        "",
        "eviction order (first goes first):",
        f"  {'#':>3}  {'POD':<50} {'MEMORY':>10}  STARTED",
    ]
    for n, entry in enumerate(status.get("eviction_order") or [], 1):
        started = datetime.fromtimestamp(float(entry["started_at"]), UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        lines.append(f"  {n:>3}  {entry['pod']:<50} {_size(entry['memory']):>10}  {started}")
    protected = status.get("protected") or []
    if protected:
        lines += ["", "never evicted:"]
        lines += [f"  {p['pod']:<50} {p['why']}" for p in protected]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        with urllib.request.urlopen(args.url, timeout=5) as response:  # noqa: S310 - local agent
            status = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"oomguard status: cannot reach the agent at {args.url}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(status, indent=2) if args.json else render_table(status))
    return 0
