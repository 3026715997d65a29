"""A real Kubernetes node inside the real-kernel VM: containerd 2.x + runc + CNI + kubelet,
kube-scheduler and kube-proxy beside the control plane of ``tests/cluster``.

Everything runs as root inside the VM (cgroup v2 with the memory controller exists only
there). Binaries come from ``tests/node/build`` and ``tests/cluster/build``; images from
``tests/node/images`` (OCI archives, imported with ``ctr``: no registry is involved).

Networking stays inside the VM: a dummy interface carries the node's address (NODE_IP), the
CNI bridge plugin gives pods addresses in POD_CIDR behind ``cni0``, and kube-proxy (iptables
mode) turns Service ClusterIPs, the apiserver's ``kubernetes`` Service included, into those
addresses. The apiserver advertises NODE_IP, so pods reach it through 10.0.0.1 like on any
cluster, and the apiserver reaches webhook Services through the same rules.

State (containerd's root and state, the kubelet's root dir) lives on a tmpfs of its own:
the VM's root is the host's filesystem read-only with overlays, and overlayfs (containerd's
snapshotter) cannot stack on an overlay.

Two cgroup drivers (``driver=``): ``cgroupfs`` (the kubelet and containerd run as plain
processes of the guest and write cgroupfs themselves) and ``systemd``: a real systemd runs
as PID 1 of its own namespaces (``tests/vm/systemd_container.py``), containerd and the
kubelet are its services (``systemd_services.py``), the kubelet has ``cgroupDriver:
systemd`` and runc ``SystemdCgroup = true``, so ``kubepods.slice`` and every pod's slice and
scope are systemd units. The state then lives on systemd's own ``/run`` (a tmpfs), which the
guest reaches under ``/proc/<pid>/root``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "cluster"))
sys.path.insert(0, str(REPO / "tests" / "vm"))

from control_plane import (  # noqa: E402
    ClusterBinaries,
    ControlPlane,
    ControlPlaneError,
    _issue_cert,
    _Processes,
    free_port,
    running_control_plane,
    write_kubeconfig,
)
from systemd_container import SystemdContainer, running_systemd  # noqa: E402
from systemd_services import ServiceError, SystemdServices  # noqa: E402

BIN_DIR = HERE / "cache" / "bin"
IMAGE_DIR = HERE / "cache" / "images"
CNI_BIN_DIR = Path("/usr/lib/cni")
RUNC = Path("/usr/sbin/runc")

NODE_NAME = "oomguard-node"
NODE_IP = "10.89.0.1"
POD_CIDR = "10.88.0.0/16"
PAUSE_IMAGE = "localhost/pause:oomguard-test"
OOMGUARD_IMAGE = "localhost/oomguard:node-test"
PYTHON_IMAGE = "localhost/oomguard-python-base:bookworm"
IMAGES = ("pause", "python-base", "oomguard")
# Memory the kubelet keeps out of node allocatable: kubepods' memory.max is node memory less
# this, so a storm the guard does not stop ends in kernel OOM kills inside kubepods, not in
# a machine-wide OOM that could take the control plane with it.
SYSTEM_RESERVED_MI = 2560
CgroupDriver = Literal["cgroupfs", "systemd"]
SYSTEMD_CGROUP = "oomguard-node-systemd"  # systemd's hierarchy under the guest's /sys/fs/cgroup
# what a node's root cgroup offers; the kubelet checks cpu, cpuset, memory, pids (hugetlb if
# the kernel has it) in its cgroup root, which under systemd is this subtree's root
NODE_CONTROLLERS = ("cpu", "cpuset", "io", "memory", "pids", "hugetlb")


class NodeError(RuntimeError):
    """The node could not be built, found or brought up (the message says which and why)."""


@dataclass(frozen=True)
class NodeBinaries:
    kubelet: Path
    scheduler: Path
    proxy: Path
    containerd: Path
    shim: Path
    ctr: Path

    @classmethod
    def locate(cls, bin_dir: Path = BIN_DIR) -> NodeBinaries:
        found = cls(
            kubelet=bin_dir / "kubelet",
            scheduler=bin_dir / "kube-scheduler",
            proxy=bin_dir / "kube-proxy",
            containerd=bin_dir / "containerd",
            shim=bin_dir / "containerd-shim-runc-v2",
            ctr=bin_dir / "ctr",
        )
        missing = [str(p) for p in vars(found).values() if not os.access(p, os.X_OK)]
        missing += [str(p) for p in (RUNC, CNI_BIN_DIR / "bridge") if not p.exists()]
        missing += [
            str(IMAGE_DIR / f"{name}.tar")
            for name in IMAGES
            if not (IMAGE_DIR / f"{name}.tar").exists()
        ]
        if missing:
            raise NodeError(
                f"node parts missing: {', '.join(missing)}; run tests/node/build and "
                "tests/node/images (or scripts/setup)"
            )
        return found


@dataclass(frozen=True)
class Node:
    """A running node and its control plane."""

    cp: ControlPlane
    name: str
    workdir: Path
    containerd_socket: Path
    binaries: NodeBinaries
    processes: _Processes
    driver: CgroupDriver = "cgroupfs"
    systemd: SystemdContainer | None = None  # the node's init under the systemd driver
    services: SystemdServices | None = None  # containerd and the kubelet, under systemd

    def ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(self.binaries.ctr),
                "--address",
                str(self.containerd_socket),
                "-n",
                "k8s.io",
                *args,
            ],
            capture_output=True,
            text=True,
            check=False,
        )

    def log_tail(self, name: str, lines: int = 40) -> str:
        return self.processes.log_tail(name, lines)  # services log to the same folder

    @property
    def cgroup_root(self) -> Path:
        """The node's cgroup hierarchy as the guest sees it (systemd's, under that driver)."""
        return self.systemd.cgroup if self.systemd is not None else Path("/sys/fs/cgroup")

    def seen(self, path: str) -> Path:
        """A path as the kubelet and its pods' hostPath volumes see it, as the guest sees it
        (under the systemd driver they live in systemd's mount namespace, its own ``/run``)."""
        if self.systemd is None:
            return Path(path)
        return Path(f"/proc/{self.systemd.pid}/root{path}")


def _run(*argv: str) -> None:
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NodeError(f"{' '.join(argv)} failed: {(result.stdout + result.stderr).strip()}")


def prepare_host(state: Path | None) -> None:
    """Kernel modules, sysctls, the node's address, and for the cgroupfs bed (``state``
    given) cgroup2 remounted as on a systemd node and a tmpfs for runtime state (``None``:
    the systemd bed, whose state lives in its systemd's ``/run``)."""
    for module in ("overlay", "br_netfilter", "bridge", "veth", "dummy", "nf_conntrack",
                   "iptable_nat", "iptable_filter", "xt_conntrack", "xt_MASQUERADE",
                   "xt_comment", "xt_mark", "xt_addrtype", "xt_nat", "xt_statistic"):  # fmt: skip
        subprocess.run(["modprobe", module], capture_output=True, check=False)
    for key, value in {
        "net/ipv4/ip_forward": "1",
        "net/bridge/bridge-nf-call-iptables": "1",
        "net/ipv4/conf/all/route_localnet": "1",
    }.items():
        path = Path("/proc/sys") / key
        if path.exists():
            path.write_text(value)
    _run("ip", "link", "set", "lo", "up")
    if subprocess.run(["ip", "link", "show", "oomguard0"], capture_output=True).returncode != 0:
        _run("ip", "link", "add", "oomguard0", "type", "dummy")
        _run("ip", "addr", "add", f"{NODE_IP}/24", "dev", "oomguard0")
        _run("ip", "link", "set", "oomguard0", "up")
        _run("ip", "route", "add", "default", "via", "10.89.0.254", "dev", "oomguard0", "onlink")
    if state is not None:  # the cgroupfs bed (the systemd bed's systemd mounts its own)
        # as systemd mounts it on real nodes: a container in its own cgroup namespace may
        # then not move another container's processes (what the sidecar example must allow)
        _run("mount", "-o", "remount,nsdelegate", "/sys/fs/cgroup")
        state.mkdir(parents=True, exist_ok=True)
        _run("mount", "-t", "tmpfs", "-o", "mode=0755", "oomguard-node", str(state))


def enable_node_controllers(root: Path = Path("/sys/fs/cgroup")) -> None:
    """Offer a nested hierarchy (systemd's) the controllers a node's root cgroup has: a
    child sees only what its parent enables."""
    available = set((root / "cgroup.controllers").read_text().split())
    wanted = [name for name in NODE_CONTROLLERS if name in available]
    (root / "cgroup.subtree_control").write_text(" ".join(f"+{name}" for name in wanted))


def containerd_config(state: Path, cni_conf: Path, systemd_cgroup: bool = False) -> str:
    return f"""version = 3
root = "{state}/containerd/root"
state = "{state}/containerd/state"

[grpc]
  address = "{state}/containerd.sock"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{PAUSE_IMAGE}"

[plugins."io.containerd.cri.v1.runtime"]
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "{RUNC}"
        SystemdCgroup = {"true" if systemd_cgroup else "false"}
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{CNI_BIN_DIR}"]
    conf_dir = "{cni_conf}"
"""


def cni_config() -> dict[str, object]:
    return {
        "cniVersion": "1.0.0",
        "name": "oomguard-node",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(
    pki: Path, socket: Path, healthz_port: int, driver: CgroupDriver = "cgroupfs"
) -> dict[str, object]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": driver,
        "containerRuntimeEndpoint": f"unix://{socket}",
        "address": NODE_IP,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "readOnlyPort": 0,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "failSwapOn": False,
        "systemReserved": {"memory": f"{SYSTEM_RESERVED_MI}Mi"},
        "resolvConf": "/etc/resolv.conf",
        "clusterDomain": "cluster.local",
        # tmpfs state: disk-pressure eviction would read the VM's memory as disk
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "0%",
            "imagefs.available": "0%",
            "nodefs.inodesFree": "0%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "localStorageCapacityIsolation": False,
        "serializeImagePulls": False,
        "nodeStatusUpdateFrequency": "4s",
    }


def _wait(
    what: str,
    probe: object,
    deadline: float,
    procs: _Processes,
    services: SystemdServices | None = None,
) -> None:
    last = ""
    while time.monotonic() < deadline:
        procs_alive(procs)
        if services is not None:
            try:
                services.check_alive()
            except ServiceError as exc:
                raise NodeError(str(exc)) from exc
        try:
            if probe():  # type: ignore[operator]
                return
        except Exception as exc:  # the probe's own failures are the progress report
            last = repr(exc)
        time.sleep(0.5)
    raise NodeError(f"timed out waiting for {what} {last}")


def procs_alive(procs: _Processes) -> None:
    try:
        procs.check_alive()
    except ControlPlaneError as exc:
        raise NodeError(str(exc)) from exc


@contextlib.contextmanager
def running_node(
    *,
    ready_timeout: float = 1500.0,
    state: Path = Path("/run/oomguard-node"),
    driver: CgroupDriver = "cgroupfs",
) -> Iterator[Node]:
    """Bring the node up (Ready, images imported); tear everything down afterwards."""
    binaries = NodeBinaries.locate()
    if kubelet_listening():
        raise NodeError(
            f"a kubelet already listens on {NODE_IP}:{KUBELET_PORT}: another node bed is up in "
            "this VM (one node at a time: they share the node's name, address, port and CNI "
            "bridge); run the systemd driver's tests on their own"
        )
    started = time.monotonic()
    deadline = started + ready_timeout
    prepare_host(state if driver == "cgroupfs" else None)
    workdir = Path(tempfile.mkdtemp(prefix="oomguard-node-"))
    logs = workdir / "logs"
    logs.mkdir()
    procs = _Processes(logs)
    services: SystemdServices | None = None
    env_path = f"{binaries.shim.parent}:{os.environ.get('PATH', '')}"
    os.environ["PATH"] = env_path  # containerd finds its shim, kube-proxy iptables, on PATH
    try:
        with contextlib.ExitStack() as stack:
            systemd = None
            if driver == "systemd":
                enable_node_controllers()
                systemd = stack.enter_context(
                    running_systemd(SYSTEMD_CGROUP, log=logs / "systemd.log")
                )
                systemd.start_system_bus()  # what the agent's pod reaches systemd through
                services = SystemdServices(systemd, logs)
            cp = stack.enter_context(
                running_control_plane(
                    ClusterBinaries.locate(),
                    ready_timeout=ready_timeout,
                    extra_apiserver_args=[
                        "--bind-address=0.0.0.0",
                        f"--advertise-address={NODE_IP}",
                        "--endpoint-reconciler-type=lease",
                    ],
                )
            )
            timings = {"control plane": time.monotonic() - started}
            say = lambda what: progress(  # noqa: E731
                f"node bed ({driver}): {what} after {time.monotonic() - started:.0f} s"
            )
            say("control plane ready")
            pki = cp.workdir / "pki"
            cni_conf = workdir / "cni"
            cni_conf.mkdir()
            (cni_conf / "10-oomguard.conflist").write_text(json.dumps(cni_config()))
            config = workdir / "containerd.toml"
            config.write_text(
                containerd_config(state, cni_conf, systemd_cgroup=systemd is not None)
            )
            cri_socket = state / "containerd.sock"  # as containerd and the kubelet see it
            seen_state = state  # as the guest (this process) sees it
            containerd = [str(binaries.containerd), "--config", str(config)]
            if services is not None and systemd is not None:
                seen_state = Path(f"/proc/{systemd.pid}/root{state}")
                seen_state.mkdir(parents=True, exist_ok=True)
                # containerd.service as containerd ships it: shims outlive a restart
                services.start(
                    "containerd",
                    containerd,
                    env={"PATH": env_path},
                    properties=["Delegate=yes", "KillMode=process", "TasksMax=infinity"],
                )
            else:
                procs.start("containerd", containerd)
            seen_socket = seen_state / "containerd.sock"
            _wait("containerd's socket", seen_socket.exists, deadline, procs, services)
            say("containerd up")
            node = Node(
                cp, NODE_NAME, workdir, seen_socket, binaries, procs, driver, systemd, services
            )
            for name in IMAGES:
                result = node.ctr("images", "import", str(IMAGE_DIR / f"{name}.tar"))
                if result.returncode != 0:
                    raise NodeError(f"ctr images import {name}.tar: {result.stderr.strip()}")
                say(f"{name} image imported")
            timings["containerd + images"] = time.monotonic() - started

            _issue_cert(
                pki,
                "kubelet",
                f"/O=system:nodes/CN=system:node:{NODE_NAME}",
                [
                    "basicConstraints=critical,CA:FALSE",
                    "keyUsage=critical,digitalSignature",
                    "extendedKeyUsage=clientAuth",
                ],
            )
            kubelet_kubeconfig = workdir / "kubelet.kubeconfig"
            write_kubeconfig(
                kubelet_kubeconfig,
                cp.server,
                pki / "ca.crt",
                pki / "kubelet.crt",
                pki / "kubelet.key",
                f"system:node:{NODE_NAME}",
            )
            kubelet_yaml = workdir / "kubelet.json"
            config_json = kubelet_config(pki, cri_socket, free_port(), driver)
            kubelet_yaml.write_text(json.dumps(config_json))
            kubelet = [
                str(binaries.kubelet),
                f"--config={kubelet_yaml}",
                f"--kubeconfig={kubelet_kubeconfig}",
                f"--root-dir={state}/kubelet",
                f"--node-ip={NODE_IP}",
                f"--hostname-override={NODE_NAME}",
                "--v=1",
            ]
            if services is not None:
                services.start("kubelet", kubelet, env={"PATH": env_path})
            else:
                procs.start("kubelet", kubelet)
            procs.start(
                "kube-scheduler",
                [
                    str(binaries.scheduler),
                    f"--kubeconfig={cp.kubeconfig}",
                    f"--authentication-kubeconfig={cp.kubeconfig}",
                    f"--authorization-kubeconfig={cp.kubeconfig}",
                    "--leader-elect=false",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={free_port()}",
                ],
            )
            # kube-proxy takes the node's IPs once at start and exits when they later differ
            # (pkg/proxy/node.go): a node registered after its 30 s wait makes it exit 1. So it
            # starts only when the Node object carries its address.
            _wait(
                "the Node object and its address",
                lambda: node_addressed(cp),
                deadline,
                procs,
                services,
            )
            procs.start(
                "kube-proxy",
                [
                    str(binaries.proxy),
                    f"--kubeconfig={cp.kubeconfig}",
                    f"--hostname-override={NODE_NAME}",
                    "--proxy-mode=iptables",
                    f"--cluster-cidr={POD_CIDR}",
                    f"--healthz-bind-address=127.0.0.1:{free_port()}",
                    f"--metrics-bind-address=127.0.0.1:{free_port()}",
                ],
            )
            _wait("the node to be Ready", lambda: node_ready(cp), deadline, procs, services)
            untaint_ready_node(cp)
            timings["node Ready"] = time.monotonic() - started
            progress(
                f"node bed ({driver}): " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
            )
            try:
                yield node
            finally:
                procs.stop_all()  # kube-proxy and the scheduler go before their apiserver
    except NodeError as exc:
        names = [name for name, _ in procs.started] + (services.names if services else [])
        tails = "\n".join(f"--- {name} ---\n{procs.log_tail(name)}" for name in names)
        raise NodeError(f"{exc}\n{tails}") from None
    finally:
        procs.stop_all()
        for mount in reversed(_mounts_under(state)):
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
        shutil.rmtree(workdir, ignore_errors=True)


KUBELET_PORT = 10250


def kubelet_listening() -> bool:
    """Whether something (another bed's kubelet) already listens on the kubelet's port here:
    read from the kernel's socket table, not by connecting (a network may answer for any
    address)."""
    port = f"{KUBELET_PORT:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[1].rsplit(":", 1)[1] == port and fields[3] == "0A":  # LISTEN
                    return True
    return False


def progress(line: str) -> None:
    """To stderr (the test's captured output) and, inside the VM, to its console, so that the
    VM's output log shows how far a slow bring-up got while it is still running. Stamped
    with the UTC time of day, the clock the agent's and the kubelet's logs use."""
    line = f"{time.strftime('%H:%M:%S', time.gmtime())} {line}"
    print(line, file=sys.stderr, flush=True)
    if os.environ.get("OOMGUARD_IN_VM") == "1":
        with contextlib.suppress(OSError), open("/dev/console", "w") as console:
            console.write(line + "\n")


def _mounts_under(path: Path) -> list[str]:
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if point == str(path) or point.startswith(f"{path}/"):
            found.append(point)
    return found


NOT_READY_TAINT = "node.kubernetes.io/not-ready"


def untaint_ready_node(cp: ControlPlane) -> None:
    """Do the node lifecycle controller's part for our one Ready node: the kubelet registers
    it with the ``not-ready:NoSchedule`` taint, and the controller that lifts it is off in
    ``tests/cluster`` (it would mark a node without a kubelet NotReady). Left on, only pods
    tolerating every taint (the agent's DaemonSet) would ever be scheduled here."""
    from kubernetes.client import CoreV1Api

    core = CoreV1Api(cp.api_client)
    node = core.read_node(NODE_NAME)
    kept = [t for t in node.spec.taints or [] if t.key != NOT_READY_TAINT]
    if len(kept) != len(node.spec.taints or []):
        body = {"spec": {"taints": [cp.api_client.sanitize_for_serialization(t) for t in kept]}}
        core.patch_node(NODE_NAME, body)


def node_addressed(cp: ControlPlane) -> bool:
    """The Node object exists and lists the address kube-proxy will take for its own."""
    from kubernetes.client import CoreV1Api

    try:
        node = CoreV1Api(cp.api_client).read_node(NODE_NAME)
    except Exception:
        return False
    return any(a.type == "InternalIP" and a.address == NODE_IP for a in node.status.addresses or [])


def node_ready(cp: ControlPlane) -> bool:
    from kubernetes.client import CoreV1Api

    try:
        node = CoreV1Api(cp.api_client).read_node(NODE_NAME)
    except Exception:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tests/node/node_bed.py",
        description="Bring a real node up inside the VM; run COMMAND with KUBECONFIG set.",
    )
    parser.add_argument("--timeout", type=float, default=1500.0)
    parser.add_argument("--driver", choices=("cgroupfs", "systemd"), default="cgroupfs")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(128 + s))
    try:
        with running_node(ready_timeout=args.timeout, driver=args.driver) as node:
            if command:
                env = node.cp.env()
                if node.systemd is not None:  # for nsenter -t $OOMGUARD_NODE_SYSTEMD_PID
                    env["OOMGUARD_NODE_SYSTEMD_PID"] = str(node.systemd.pid)
                return subprocess.run(command, env=env, check=False).returncode
            return 0
    except (NodeError, ControlPlaneError) as exc:
        print(f"node bed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
