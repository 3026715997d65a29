"""A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) on 127.0.0.1.

The binaries come from `tests/cluster/build` (Go modules, cached in `cache/bin`). Everything a
run needs (PKI, service-account signing key, etcd data, logs, kubeconfig) lives in one temp dir
that is deleted when the context manager exits, whether start-up worked or not.

Used by the `control_plane` pytest fixture and by the `tests/cluster/start` script. Only the
standard library is needed to start the servers; `ControlPlane.api_client` imports the
`kubernetes` client lazily so the script runs on a bare python3 too.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

HERE = Path(__file__).resolve().parent
BIN_DIR = HERE / "cache" / "bin"
BUILD_SCRIPT = HERE / "build"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"

# No kubelet runs, so nothing would ever post a Node heartbeat: the node lifecycle controller
# would mark every test Node unreachable after ~50 s and taint it NoExecute, and the taint
# eviction controller would then delete its pods. Everything else runs as in a real cluster.
DISABLED_CONTROLLERS = ("node-lifecycle-controller",)


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, found or started (message says which and why)."""


@dataclass(frozen=True)
class ClusterBinaries:
    apiserver: Path
    controller_manager: Path
    etcd: Path
    helm: Path

    @classmethod
    def locate(cls, bin_dir: Path = BIN_DIR, *, check_current: bool = True) -> ClusterBinaries:
        """Find the built binaries; fail loudly when they are missing or older than go.sum."""
        found = cls(
            apiserver=bin_dir / "kube-apiserver",
            controller_manager=bin_dir / "kube-controller-manager",
            etcd=bin_dir / "etcd",
            helm=bin_dir / "helm",
        )
        missing = [str(p) for p in vars(found).values() if not os.access(p, os.X_OK)]
        if missing:
            raise ControlPlaneError(
                f"cluster binaries missing: {', '.join(missing)}; run {BUILD_SCRIPT} "
                "(or scripts/setup) and check its output for the build error"
            )
        if check_current and bin_dir == BIN_DIR:
            check = subprocess.run(
                ["bash", str(BUILD_SCRIPT), "--check"], capture_output=True, text=True, check=False
            )
            if check.returncode != 0:
                raise ControlPlaneError(
                    f"cluster binaries in {bin_dir} are stale or unverified: "
                    f"{(check.stdout + check.stderr).strip()}; run {BUILD_SCRIPT}"
                )
        return found


@dataclass(frozen=True)
class ControlPlane:
    """A running control plane: where it listens and how to talk to it as cluster admin."""

    server: str
    kubeconfig: Path
    ca_file: Path
    workdir: Path
    binaries: ClusterBinaries

    @functools.cached_property
    def api_client(self) -> ApiClient:
        """A `kubernetes.client.ApiClient` authenticated as admin (O=system:masters)."""
        from kubernetes import config

        api: ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig)
        )
        return api

    def env(self) -> dict[str, str]:
        """The environment for a child process (kubectl, helm) that should use this cluster."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}


# ---------------------------------------------------------------- PKI (openssl CLI)


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ControlPlaneError(f"openssl {' '.join(args)} failed: {result.stderr.strip()}")


def _new_key(path: Path) -> None:
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-out", str(path), cwd=path.parent,
    )  # fmt: skip


def _issue_cert(
    pki: Path, name: str, subject: str, extensions: Sequence[str], *, ca: str = "ca"
) -> None:
    """Signs `<name>.crt` for a new `<name>.key` with the test CA."""
    _new_key(pki / f"{name}.key")
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=pki)
    (pki / f"{name}.ext").write_text("\n".join(extensions) + "\n")
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
        "-set_serial", str(secrets.randbits(63)), "-days", "7", "-sha256",
        "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=pki,
    )  # fmt: skip


def make_pki(pki: Path) -> None:
    """CA, apiserver serving cert, admin and controller-manager client certs, SA key pair."""
    pki.mkdir(parents=True)
    _new_key(pki / "ca.key")
    _openssl(
        "req", "-x509", "-key", "ca.key", "-subj", "/CN=oomguard-test-ca", "-days", "7",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        "-out", "ca.crt", cwd=pki,
    )  # fmt: skip
    leaf = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature"]
    _issue_cert(
        pki,
        "apiserver",
        "/CN=kube-apiserver",
        [
            *leaf,
            "extendedKeyUsage=serverAuth",
            "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes,"
            "DNS:kubernetes.default,DNS:kubernetes.default.svc,"
            "DNS:kubernetes.default.svc.cluster.local",
        ],
    )
    client = [*leaf, "extendedKeyUsage=clientAuth"]
    _issue_cert(pki, "admin", "/O=system:masters/CN=oomguard-test-admin", client)
    _issue_cert(pki, "controller-manager", "/CN=system:kube-controller-manager", client)
    # Service-account token signing key pair (ES256): TokenRequest and SA tokens need it.
    _new_key(pki / "sa.key")
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def write_kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path, user: str) -> None:
    """A kubeconfig with client-certificate auth (JSON is valid YAML for every client)."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "oomguard-test",
                "cluster": {"server": server, "certificate-authority": str(ca)},
            }
        ],
        "users": [
            {"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}
        ],
        "contexts": [{"name": user, "context": {"cluster": "oomguard-test", "user": user}}],
        "current-context": user,
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")


# ---------------------------------------------------------------- processes


def free_port() -> int:
    """A port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it if the parent dies (even by SIGKILL)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class _Processes:
    """Started servers, stopped in reverse order (SIGTERM, then SIGKILL)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        with (self.log_dir / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        self.started.append((name, proc))
        return proc

    def check_alive(self) -> None:
        for name, proc in self.started:
            if proc.poll() is not None:
                raise ControlPlaneError(
                    f"{name} exited with status {proc.returncode}:\n{self.log_tail(name)}"
                )

    def log_tail(self, name: str, lines: int = 30) -> str:
        try:
            text = (self.log_dir / f"{name}.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop_all(self, timeout: float = 15.0) -> None:
        for _, proc in reversed(self.started):
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.started.clear()


def _https_get(url: str, context: ssl.SSLContext) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, context=context, timeout=5) as resp:
            return int(resp.status), resp.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return int(err.code), err.read().decode(errors="replace")


def _wait_until_ok(
    name: str, url: str, context: ssl.SSLContext, procs: _Processes, deadline: float
) -> None:
    last = "no answer yet"
    while time.monotonic() < deadline:
        procs.check_alive()
        try:
            status, body = _https_get(url, context)
        except (OSError, ssl.SSLError) as err:
            last = str(err)
        else:
            if status == 200:
                return
            last = f"HTTP {status}: {body[-2000:]}"
        time.sleep(0.25)
    raise ControlPlaneError(
        f"{name} not ready at {url} in time; last answer: {last}\n{procs.log_tail(name)}"
    )


@contextlib.contextmanager
def running_control_plane(
    binaries: ClusterBinaries | None = None,
    *,
    ready_timeout: float = 60.0,
    extra_apiserver_args: Sequence[str] = (),
) -> Iterator[ControlPlane]:
    """Starts etcd, kube-apiserver and kube-controller-manager; stops them and removes all files.

    Ready means the apiserver's /readyz and the controller-manager's /healthz answer 200.
    """
    binaries = binaries or ClusterBinaries.locate()
    deadline = time.monotonic() + ready_timeout
    workdir = Path(tempfile.mkdtemp(prefix="oomguard-cluster-"))
    logs = workdir / "logs"
    logs.mkdir()
    procs = _Processes(logs)
    try:
        pki = workdir / "pki"
        make_pki(pki)
        etcd_port, peer_port, api_port, kcm_port = (free_port() for _ in range(4))
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        server = f"https://127.0.0.1:{api_port}"

        procs.start(
            "etcd",
            [
                str(binaries.etcd),
                "--name=oomguard-test",
                f"--data-dir={workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=oomguard-test={peer_url}",
                "--log-level=warn",
                # Test data only: skipping fsync makes every apiserver write much faster.
                "--unsafe-no-fsync",
            ],
        )
        procs.start(
            "kube-apiserver",
            [
                str(binaries.apiserver),
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--etcd-servers={etcd_url}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--authorization-mode=Node,RBAC",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                # Nothing serves the kubernetes Service here; keep its Endpoints out of the way.
                "--endpoint-reconciler-type=none",
                "--allow-privileged=true",
                "--profiling=false",
                *extra_apiserver_args,
            ],
        )
        admin_kubeconfig = workdir / "admin.kubeconfig"
        write_kubeconfig(
            admin_kubeconfig,
            server,
            pki / "ca.crt",
            pki / "admin.crt",
            pki / "admin.key",
            "oomguard-test-admin",
        )
        admin_tls = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        admin_tls.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        _wait_until_ok("kube-apiserver", f"{server}/readyz", admin_tls, procs, deadline)

        kcm_kubeconfig = workdir / "controller-manager.kubeconfig"
        write_kubeconfig(
            kcm_kubeconfig,
            server,
            pki / "ca.crt",
            pki / "controller-manager.crt",
            pki / "controller-manager.key",
            "system:kube-controller-manager",
        )
        procs.start(
            "kube-controller-manager",
            [
                str(binaries.controller_manager),
                f"--kubeconfig={kcm_kubeconfig}",
                f"--authentication-kubeconfig={kcm_kubeconfig}",
                f"--authorization-kubeconfig={kcm_kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={kcm_port}",
                f"--cert-dir={workdir / 'kcm-certs'}",
                "--leader-elect=false",
                # Each controller gets its own ServiceAccount, as in kubeadm clusters.
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                "--controllers=" + ",".join(["*", *(f"-{c}" for c in DISABLED_CONTROLLERS)]),
                "--profiling=false",
            ],
        )
        # Its serving cert is self-signed in --cert-dir; /healthz carries no secrets.
        kcm_tls = ssl.create_default_context()
        kcm_tls.check_hostname = False
        kcm_tls.verify_mode = ssl.CERT_NONE
        _wait_until_ok(
            "kube-controller-manager",
            f"https://127.0.0.1:{kcm_port}/healthz",
            kcm_tls,
            procs,
            deadline,
        )
        yield ControlPlane(
            server=server,
            kubeconfig=admin_kubeconfig,
            ca_file=pki / "ca.crt",
            workdir=workdir,
            binaries=binaries,
        )
    finally:
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------- script entry point


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tests/cluster/start",
        description="Start etcd + kube-apiserver + kube-controller-manager on 127.0.0.1. "
        "With a command, run it with KUBECONFIG set and stop the cluster after it; "
        "without one, wait for Ctrl-C / SIGTERM.",
    )
    parser.add_argument("--kubeconfig", type=Path, help="also copy the admin kubeconfig here")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to get ready")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    started = time.monotonic()
    try:
        with running_control_plane(ready_timeout=args.timeout) as cp:
            took = time.monotonic() - started
            if args.kubeconfig:
                shutil.copyfile(cp.kubeconfig, args.kubeconfig)
            print(f"control plane ready in {took:.1f} s at {cp.server}", file=sys.stderr)
            print(f"KUBECONFIG={args.kubeconfig or cp.kubeconfig}", flush=True)
            if command:
                return subprocess.run(command, env=cp.env(), check=False).returncode
            while True:
                signal.pause()
    except ControlPlaneError as err:
        print(f"start: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
