"""``oomguard monitor``: the DaemonSet agent (node mode), or a pod's sidecar (sidecar mode).

Startup checks say plainly why the agent cannot run: cgroup v1 (no cgroup2 mount or no memory
controller in it), no kubepods cgroup, no NODE_NAME. On kernels older than 5.9 memory.high can
livelock an allocator, so the agent does not set it there and relies on the threshold and
pressure monitors only.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path, PurePosixPath

from oomguard.monitor.actions.pod_evictor import EVICTION_REQUEST_TIMEOUT
from oomguard.monitor.feedback.http_endpoints import AGENT_PORT
from oomguard.monitor.feedback.logs import log_event
from oomguard.monitor.runtime.kernel_release import kernel_version as kernel_version
from oomguard.monitor.runtime.kernel_release import memory_high_is_safe
from oomguard.wire import arguments

log = logging.getLogger("oomguard.node")

DEFAULT_STATE_DIR = "/var/lib/oomguard"


def _memory_high_allowed(monitors_left: str) -> bool:
    """Whether this kernel may get a memory.high; says so in the log when it may not."""
    release = os.uname().release
    if memory_high_is_safe(release):
        return True
    log_event(
        log,
        logging.WARNING,
        "kernel older than 5.9: memory.high is not set (allocator livelock risk); " + monitors_left,
        kernel=release,
    )
    return False


def configure(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument(
        "--mode",
        choices=("node", "sidecar"),
        default="node",
        help="node: guard kubepods, evict pods (DaemonSet); sidecar: guard this pod's workers",
    )
    parser.add_argument(
        "--node-name", default=env("NODE_NAME"), help="this node (default: $NODE_NAME)"
    )
    parser.add_argument(
        "--pod-uid", default=env("POD_UID"), help="this agent's pod (never evicted)"
    )
    parser.add_argument(
        "--pod-name", default=env("POD_NAME"), help="this agent's pod name (default: $POD_NAME)"
    )
    parser.add_argument(
        "--pod-namespace",
        default=env("POD_NAMESPACE"),
        help="this agent's namespace (default: $POD_NAMESPACE)",
    )
    parser.add_argument(
        "--cgroup-root", type=Path, help="cgroup2 mount (default: found in mountinfo)"
    )
    parser.add_argument("--kubepods-cgroup", help="path under the cgroup root (default: detected)")
    parser.add_argument(
        "--cgroup-driver",
        choices=("systemd", "cgroupfs"),
        help="the kubelet's cgroup driver (default: read from the kubepods cgroup's name)",
    )
    parser.add_argument(
        "--systemd-dbus",
        choices=("auto", "on", "off"),
        default="auto",
        help="systemd driver: set kubepods.slice MemoryHigh= through systemd's D-Bus too, so "
        "systemd keeps it; auto: when the socket exists (default: %(default)s)",
    )
    parser.add_argument(
        "--systemd-socket",
        type=Path,
        default=Path("/run/dbus/system_bus_socket"),
        help="the system bus, or /run/systemd/private (systemd itself: root, and only in "
        "systemd's PID namespace, i.e. hostPID) (default: %(default)s)",
    )
    parser.add_argument(
        "--reserve",
        type=arguments.size,
        metavar="SIZE",
        help="node: reserve when no NodeMemoryReserve exists (e.g. 1Gi); "
        "sidecar: pod limit minus this is the workload's memory.high (default: 10%%, >= 64Mi)",
    )
    parser.add_argument(
        "--node-memory", type=arguments.size, metavar="SIZE", help="node memory (default: MemTotal)"
    )
    parser.add_argument(
        "--margin",
        type=arguments.size,
        default="64Mi",
        metavar="SIZE",
        help="memory.high stays this far below max (default: %(default)s)",
    )
    parser.add_argument("--dry-run", action="store_true", help="log decisions, act on nothing")
    parser.add_argument(
        "--state-dir",
        default=DEFAULT_STATE_DIR,
        metavar="DIR",
        help="node mode, on the host: memory.high from before oomguard (restored by a "
        "successor after a crash) and the lock that keeps a second agent off this node "
        "(default: %(default)s; '' for neither)",
    )
    parser.add_argument(
        "--eviction-timeout",
        type=arguments.positive_seconds,
        default=EVICTION_REQUEST_TIMEOUT,
        metavar="SECONDS",
        help="seconds to wait for one eviction request; longer than the eviction webhook's "
        "timeoutSeconds (default: %(default)s)",
    )
    parser.add_argument(
        "--http-port",
        type=arguments.port,
        default=AGENT_PORT,
        metavar="PORT",
        help="port of /healthz, /readyz, /status and /metrics (default: %(default)s)",
    )
    parser.add_argument(
        "--http-host",
        default="0.0.0.0",  # noqa: S104 - the pod's probe port
        metavar="ADDRESS",
        help="address the HTTP server listens on (default: %(default)s)",
    )
    parser.add_argument(
        "--serve-status-to-cluster",
        action="store_true",
        help="node mode: answer /status (pod names, decisions) to any client; by default only "
        "inside the pod (kubectl exec ... oomguard status)",
    )
    parser.add_argument("--kubeconfig", help="default: in-cluster service account")
    parser.add_argument("--no-reserve-watch", action="store_true", help="ignore NodeMemoryReserve")
    parser.add_argument(
        "--tick",
        type=arguments.positive_seconds,
        default=1.0,
        metavar="SECONDS",
        help="longest wait between two of the agent's own checks while a threshold or "
        "host-memory monitor runs or an episode lasts (otherwise only triggers wake it); "
        "/healthz fails when one step runs 5 ticks (at least 10 s) (default: %(default)s)",
    )
    from oomguard.monitor.modes.sidecar_mode import configure_sidecar

    configure_sidecar(parser)


def _fail(message: str) -> int:
    print(f"oomguard monitor: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    if args.mode == "sidecar":
        return run_sidecar_mode(args)
    return run_node(args)


def run_sidecar_mode(args: argparse.Namespace) -> int:
    from oomguard.monitor.modes.sidecar_mode import run_sidecar

    return run_sidecar(args, _memory_high_allowed("threshold monitor only"))


def run_node(args: argparse.Namespace) -> int:
    from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupError, find_cgroup2_mount
    from oomguard.monitor.kube.pod_cgroups import (
        CgroupDriver,
        KubepodsLocation,
        UnknownDriverError,
        detect_driver,
        driver_of_path,
    )

    if not args.node_name:
        return _fail("NODE_NAME is not set (give it through the downward API: spec.nodeName)")
    root = args.cgroup_root
    try:
        root = root or find_cgroup2_mount()
        Cgroup(root).require_memory_controller()
    except (CgroupError, OSError) as exc:
        # CgroupError too: a v1 tmpfs or a wrong --cgroup-root has no cgroup.controllers
        return _fail(
            f"this node does not run cgroup v2 with the memory controller at "
            f"{root or 'any mount'} ({exc}); oomguard needs the unified hierarchy "
            "(systemd.unified_cgroup_hierarchy=1); keep the agent off cgroup v1 nodes "
            "(docs/compatibility.md)"
        )
    try:
        if args.kubepods_cgroup:
            path = PurePosixPath(args.kubepods_cgroup.strip("/"))
            driver = (
                CgroupDriver(args.cgroup_driver) if args.cgroup_driver else driver_of_path(path)
            )
        else:
            entries = {p.name for p in Path(root).iterdir() if p.is_dir()}
            driver = (
                CgroupDriver(args.cgroup_driver) if args.cgroup_driver else detect_driver(entries)
            )
            from oomguard.monitor.kube.pod_cgroups import DEFAULT_KUBEPODS

            path = DEFAULT_KUBEPODS[driver]
    except UnknownDriverError as exc:
        return _fail(str(exc))
    if not (Path(root) / path).is_dir():
        return _fail(f"the kubepods cgroup {Path(root) / path} does not exist")
    from oomguard.monitor.modes.cgroup_mounts import cgroup_mounts, read_only_kubepods_message

    mounts = cgroup_mounts(Path(root), Path(root) / path)
    if mounts.kubepods_read_only and not args.dry_run:
        return _fail(read_only_kubepods_message(Path(root) / path, mounts))
    log_event(log, logging.INFO, "cgroup mounts", **mounts.describe())
    from oomguard.monitor.runtime.node_lock import LOCK_FILE, NodeLock, NodeLockHeld

    lock = None
    if args.state_dir:
        state_dir = Path(args.state_dir)
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            lock = NodeLock.acquire(state_dir / LOCK_FILE)
        except NodeLockHeld as exc:
            return _fail(str(exc))
        except OSError as exc:
            return _fail(
                f"cannot use the state directory {state_dir} ({exc}); the chart mounts it "
                "from the host (agent.stateDir); --state-dir '' runs without a record or lock"
            )
    from oomguard.monitor.runtime.oom_score import lower_own_oom_score

    lower_own_oom_score()
    set_high = _memory_high_allowed("threshold and pressure monitors only")
    location = KubepodsLocation(driver, path)
    from oomguard.monitor.modes.node_runtime import run_agent

    try:
        return run_agent(args, Path(root), location, set_high)
    finally:
        if lock is not None:
            lock.release()
