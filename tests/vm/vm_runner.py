"""Run a command inside a throwaway VM that has a real cgroup v2 memory controller.

The host may bind the memory controller to cgroup v1, where nothing about
``memory.high``, ``memory.events`` or PSI triggers can be tested. virtme-ng boots
Debian's kernel under qemu (software emulation: nested KVM hangs on this kind of
machine) with the host's filesystem as the guest's read-only root, so the
repository and its virtualenv are visible at the same paths.

The host side (``run_in_vm``) writes a JSON spec into a fresh run directory that
is shared read-write with the guest (``--rwdir``), then boots the VM with this very
file as the guest command (``--guest SPEC``). The guest side mounts/checks cgroup2,
enables ``+memory`` for children, runs the command, and writes its exit status
back into the run directory. The status file, not virtme-ng's own exit code, is
what the host trusts: a missing status file means the VM died or never booted.

Only the standard library is used, so the entry point works before the project's
virtualenv exists and from any Python the guest can see.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import json
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parents[2]
VNG_VENV = Path(os.environ.get("OOMGUARD_VNG_VENV", "/opt/oomguard-vng"))
# The Rust virtiofsd (tests/vm/setup builds it): virtme-ng finds it on PATH and shares the
# host's root over virtio-fs with the guest's page cache on, not over uncached 9p.
VIRTIOFSD_ROOT = Path(os.environ.get("OOMGUARD_VIRTIOFSD_ROOT", "/opt/oomguard-virtiofsd"))
DEFAULT_MEMORY = "2G"
DEFAULT_CPUS = 2
DEFAULT_BOOT_TIMEOUT = 300.0
CGROUP_ROOT = Path("/sys/fs/cgroup")

# Set in the guest for the command (and by anyone who already is in a suitable VM).
IN_VM_ENV = "OOMGUARD_IN_VM"
# Set in the guest: a directory shared with the host, removed after the run.
RUNDIR_ENV = "OOMGUARD_VM_RUNDIR"

# Host variables the guest command gets; everything else in the guest
# environment is fixed here, so a run does not depend on who started it.
_FORWARDED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "CI", "VIRTUAL_ENV", "PYTHONPATH")
_FORWARDED_PREFIXES = ("OOMGUARD_", "PYTEST_", "HYPOTHESIS_")

_STARTED = "started.json"
_STATUS = "status.json"
_SPEC = "spec.json"

# Emulated VMs are CPU-bound and take 2 GiB each: more at once than the host has cores
# for only makes every one of them slower (and can exhaust RAM). Runs on one host,
# from every work tree, share these slots (flock'd files); the rest wait their turn.
SLOTS_ENV = "OOMGUARD_VM_SLOTS"
SLOT_WAIT_ENV = "OOMGUARD_VM_SLOT_WAIT"
DEFAULT_SLOT_WAIT = 3600.0
SLOT_DIR = Path(os.environ.get("OOMGUARD_VM_SLOT_DIR", "/tmp"))

# Exit statuses of run-in-vm itself, chosen like timeout(1) and env(1) do.
EXIT_TIMEOUT = 124
EXIT_VM_FAILED = 125


class VmError(RuntimeError):
    """The VM could not run the command: it did not boot, died, or lacks cgroup2 memory."""


@dataclasses.dataclass(frozen=True)
class VmResult:
    """What a run produced; output went to the streams the caller gave."""

    returncode: int
    timed_out: bool
    boot_seconds: float
    total_seconds: float


# --------------------------------------------------------------------------- host side


def host_has_cgroup2_memory(mountinfo: Path = Path("/proc/self/mountinfo")) -> bool:
    """True when a cgroup2 hierarchy here offers the memory controller."""
    for mount_point in cgroup2_mounts(mountinfo.read_text()):
        try:
            controllers = (Path(mount_point) / "cgroup.controllers").read_text().split()
        except OSError:
            continue
        if "memory" in controllers:
            return True
    return False


def cgroup2_mounts(mountinfo_text: str) -> list[str]:
    """Mount points of cgroup2 filesystems in /proc/self/mountinfo text."""
    mounts = []
    for line in mountinfo_text.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        fstype = line.split(" - ", 1)[1].split()[0]
        if fstype == "cgroup2":
            mounts.append(_unescape_mount_path(fields[4]))
    return mounts


def _unescape_mount_path(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def in_vm() -> bool:
    return os.environ.get(IN_VM_ENV) == "1"


def find_kernel() -> Path:
    """Debian's newest installed kernel image (or $OOMGUARD_VM_KERNEL)."""
    override = os.environ.get("OOMGUARD_VM_KERNEL")
    if override:
        return Path(override)
    images = sorted(Path("/boot").glob("vmlinuz-*"), key=_version_key)
    if not images:
        raise VmError("no kernel in /boot/vmlinuz-*: run tests/vm/setup")
    return images[-1]


def _version_key(image: Path) -> tuple[tuple[int, str], ...]:
    parts = re.split(r"[.\-+~]", image.name.removeprefix("vmlinuz-"))
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in parts)


def vng_path() -> Path:
    vng = VNG_VENV / "bin" / "vng"
    if not os.access(vng, os.X_OK):
        raise VmError(f"{vng} is missing: run tests/vm/setup")
    return vng


def virtiofsd_path() -> Path:
    virtiofsd = VIRTIOFSD_ROOT / "bin" / "virtiofsd"
    if not os.access(virtiofsd, os.X_OK):
        raise VmError(f"{virtiofsd} is missing: run tests/vm/setup")
    return virtiofsd


def vm_slots() -> int:
    configured = os.environ.get(SLOTS_ENV)
    if configured:
        return max(1, int(configured))
    return max(1, (os.cpu_count() or 2) // 2)


@contextlib.contextmanager
def vm_slot(notify: Callable[[str], None] | None = None) -> Iterator[int]:
    """Hold one of the host's VM slots for the duration of the block."""
    wait_limit = float(os.environ.get(SLOT_WAIT_ENV, DEFAULT_SLOT_WAIT))
    slots = vm_slots()
    start = time.monotonic()
    told = False
    while True:
        for slot in range(slots):
            fd = os.open(SLOT_DIR / f"oomguard-vm-slot-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield slot
            finally:
                os.close(fd)
            return
        waited = time.monotonic() - start
        if waited > wait_limit:
            raise VmError(
                f"no free VM slot after {waited:.0f} s: {slots} VM(s) already run on this host "
                f"(${SLOTS_ENV}, ${SLOT_WAIT_ENV})"
            )
        if not told and notify is not None:
            notify(f"waiting for a free VM slot ({slots} in use on this host, ${SLOTS_ENV})")
            told = True
        time.sleep(1)


def guest_environment(extra: Mapping[str, str] | None, rundir: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key in _FORWARDED_ENV or key.startswith(_FORWARDED_PREFIXES)
    }
    env.setdefault("HOME", "/root")
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env.update(
        {
            IN_VM_ENV: "1",
            RUNDIR_ENV: str(rundir),
            # The guest's root (the repository included) is read-only.
            "PYTHONDONTWRITEBYTECODE": "1",
            "HYPOTHESIS_STORAGE_DIRECTORY": str(rundir / "hypothesis"),
        }
    )
    env.update(extra or {})
    return env


def run_in_vm(
    argv: Sequence[str],
    *,
    cwd: Path = REPO_ROOT,
    env: Mapping[str, str] | None = None,
    memory: str = DEFAULT_MEMORY,
    cpus: int = DEFAULT_CPUS,
    rwdirs: Sequence[Path] = (),
    boot_timeout: float = DEFAULT_BOOT_TIMEOUT,
    timeout: float | None = None,
    stdout: IO[Any] | None = None,
    stderr: IO[Any] | None = None,
    show_boot: bool = False,
    notify: Callable[[str], None] | None = None,
) -> VmResult:
    """Boot a VM, run ``argv`` as root in ``cwd``, return its exit status.

    ``stdout``/``stderr`` receive the command's output (default: ours). ``rwdirs``
    are host directories the guest may write to, at the same paths. Raises
    VmError when the VM does not boot within ``boot_timeout`` seconds, dies, or
    has no cgroup2 memory controller; a command that outlives ``timeout`` (counted
    from the start, boot included) is killed with the VM and reported as timed out.
    Waits for a free host VM slot first (see ``vm_slot``); ``notify`` hears why.
    """
    if not argv:
        raise ValueError("no command to run")
    vng = vng_path()
    virtiofsd = virtiofsd_path()
    kernel = find_kernel()
    if not kernel.is_file():
        raise VmError(f"kernel image {kernel} does not exist")
    rundir = Path(tempfile.mkdtemp(prefix="oomguard-vm-"))
    try:
        spec = {"argv": list(argv), "cwd": str(cwd), "env": guest_environment(env, rundir)}
        (rundir / _SPEC).write_text(json.dumps(spec))
        guest_cmd = shlex.join(
            [sys.executable, "-B", str(Path(__file__).resolve()), "--guest", str(rundir / _SPEC)]
        )
        command = [
            str(vng),
            "--run",
            str(kernel),
            "--disable-kvm",
            "--memory",
            memory,
            "--cpus",
            str(cpus),
            "--cwd",
            str(cwd),
            "--rwdir",
            str(rundir),
        ]
        for path in rwdirs:
            command += ["--rwdir", str(Path(path).resolve())]
        if show_boot:
            command.append("--verbose")
        command += ["--exec", guest_cmd]
        host_env = dict(os.environ)
        # vng starts virtme-run, and virtme-run virtiofsd, through PATH.
        path = os.pathsep.join([str(virtiofsd.parent), str(vng.parent), host_env.get("PATH", "")])
        host_env["PATH"] = path
        with vm_slot(notify):
            return _supervise(command, host_env, rundir, boot_timeout, timeout, stdout, stderr)
    finally:
        shutil.rmtree(rundir, ignore_errors=True)


def _supervise(
    command: list[str],
    env: dict[str, str],
    rundir: Path,
    boot_timeout: float,
    timeout: float | None,
    stdout: IO[Any] | None,
    stderr: IO[Any] | None,
) -> VmResult:
    start = time.monotonic()
    boot_seconds = -1.0
    timed_out = False
    # vng runs under a watchdog that leads a new process group (vng, virtme-run, qemu)
    # and kills it when our end of its stdin pipe closes: if we are killed, so is the VM.
    process = subprocess.Popen(
        [sys.executable, "-B", str(Path(__file__).resolve()), "--watchdog", "--", *command],
        stdin=subprocess.PIPE,
        stdout=stdout,
        stderr=stderr,
        env=env,
        start_new_session=True,
    )
    try:
        while process.poll() is None:
            elapsed = time.monotonic() - start
            if boot_seconds < 0 and (rundir / _STARTED).exists():
                boot_seconds = elapsed
            if boot_seconds < 0 and elapsed > boot_timeout:
                raise VmError(
                    f"the VM did not start the command within {boot_timeout:.0f} s "
                    f"({shlex.join(command[:3])} ...); rerun tests/vm/run-in-vm --show-boot"
                )
            if timeout is not None and elapsed > timeout:
                timed_out = True
                break
            time.sleep(0.1)
    finally:
        if process.poll() is None:
            _kill_group(process)
        if process.stdin is not None:
            process.stdin.close()
    total = time.monotonic() - start
    if boot_seconds < 0 and (rundir / _STARTED).exists():
        boot_seconds = total
    if timed_out:
        return VmResult(EXIT_TIMEOUT, True, boot_seconds, total)
    status = _read_json(rundir / _STATUS)
    if status is None:
        stage = "ran the command but died" if boot_seconds >= 0 else "did not boot"
        raise VmError(
            f"the VM {stage}: no exit status came back (virtme-ng exited with "
            f"{process.returncode}); rerun tests/vm/run-in-vm --show-boot to see the console"
        )
    if status.get("error"):
        raise VmError(f"inside the VM: {status['error']}")
    return VmResult(int(status["returncode"]), False, boot_seconds, total)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def watchdog_main(command: Sequence[str]) -> int:
    """Run ``command`` (stdin: /dev/null); kill our process group when stdin hits EOF."""
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # after the spawn: ignoring is inherited
    os.set_blocking(0, False)
    while child.poll() is None:
        ready, _, _ = select.select([0], [], [], 0.5)
        if ready:
            try:
                data = os.read(0, 4096)
            except BlockingIOError:
                continue
            if not data:  # the host side is gone
                os.killpg(0, signal.SIGTERM)
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(0, signal.SIGKILL)
                return EXIT_VM_FAILED
    return child.returncode


# -------------------------------------------------------------------------- guest side


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def _ensure_cgroup2_memory() -> None:
    """Make /sys/fs/cgroup a cgroup2 root whose children can use the memory controller."""
    if str(CGROUP_ROOT) not in cgroup2_mounts(Path("/proc/self/mountinfo").read_text()):
        subprocess.run(["mount", "-t", "cgroup2", "cgroup2", str(CGROUP_ROOT)], check=True)
    controllers = (CGROUP_ROOT / "cgroup.controllers").read_text().split()
    if "memory" not in controllers:
        raise VmError(f"cgroup2 at {CGROUP_ROOT} has no memory controller: {controllers}")
    subtree = CGROUP_ROOT / "cgroup.subtree_control"
    if "memory" not in subtree.read_text().split():
        subtree.write_text("+memory")


def root_filesystem_type(mountinfo: str) -> str:
    """The type of the filesystem mounted at / (the last such mount wins), or ""."""
    root_type = ""
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == "/" and " - " in line:
            root_type = line.split(" - ", 1)[1].split()[0]
    return root_type


def _warn_if_root_is_not_virtiofs() -> None:
    """virtme-ng falls back to 9p quietly when virtiofsd does not start: say so, since
    everything the guest loads from the host then takes about 3.5x as long."""
    root_type = root_filesystem_type(Path("/proc/self/mountinfo").read_text())
    if root_type != "virtiofs":
        print(
            f"run-in-vm: warning: the guest's root is {root_type or 'unknown'}, not virtiofs "
            "(virtiofsd did not start): the run will be much slower",
            file=sys.stderr,
        )


def guest_main(spec_path: Path) -> int:
    rundir = spec_path.parent
    with (Path("/proc/uptime")).open() as uptime:
        guest_uptime = float(uptime.read().split()[0])
    _write_json(rundir / _STARTED, {"uptime": guest_uptime})
    spec = json.loads(spec_path.read_text())
    _warn_if_root_is_not_virtiofs()
    try:
        _ensure_cgroup2_memory()
    except (OSError, subprocess.CalledProcessError, VmError) as error:
        print(f"run-in-vm: {error}", file=sys.stderr)
        _write_json(rundir / _STATUS, {"returncode": EXIT_VM_FAILED, "error": str(error)})
        return EXIT_VM_FAILED
    (rundir / "hypothesis").mkdir(exist_ok=True)
    try:
        completed = subprocess.run(spec["argv"], cwd=spec["cwd"], env=spec["env"], check=False)
        returncode = completed.returncode
    except OSError as error:
        print(f"run-in-vm: cannot run {spec['argv'][0]!r}: {error}", file=sys.stderr)
        returncode = 127
    if returncode < 0:  # killed by a signal, reported like a shell does
        returncode = 128 - returncode
    _write_json(rundir / _STATUS, {"returncode": returncode})
    return returncode


# -------------------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run-in-vm",
        description="Run CMD as root in a VM with a real cgroup v2 memory controller "
        "(Debian's kernel under qemu, via virtme-ng). Exits with CMD's status; "
        f"{EXIT_TIMEOUT} on --timeout, {EXIT_VM_FAILED} when the VM cannot run it.",
    )
    parser.add_argument("--memory", default=DEFAULT_MEMORY, help="guest RAM (default %(default)s)")
    parser.add_argument("--cpus", type=int, default=DEFAULT_CPUS, help="(default %(default)s)")
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds for boot + CMD (default: none)"
    )
    parser.add_argument(
        "--boot-timeout",
        type=float,
        default=DEFAULT_BOOT_TIMEOUT,
        help="seconds until CMD must have started (default %(default)s)",
    )
    parser.add_argument(
        "--rwdir",
        action="append",
        default=[],
        type=Path,
        help="host directory the guest may write to, same path (repeatable; created if missing)",
    )
    parser.add_argument(
        "--cwd", type=Path, default=REPO_ROOT, help="guest working dir (default: the repository)"
    )
    parser.add_argument(
        "--show-boot", action="store_true", help="show the kernel console (for debugging)"
    )
    parser.add_argument(
        "--times", action="store_true", help="print boot and total seconds on stderr at the end"
    )
    parser.add_argument("--guest", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--watchdog", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.guest is not None:
        return guest_main(args.guest)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.watchdog:
        return watchdog_main(command)
    if not command:
        print(
            "run-in-vm: no command given (usage: run-in-vm [OPTIONS] -- CMD ...)", file=sys.stderr
        )
        return 2
    for path in args.rwdir:
        path.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    try:
        result = run_in_vm(
            command,
            cwd=args.cwd.resolve(),
            memory=args.memory,
            cpus=args.cpus,
            rwdirs=args.rwdir,
            boot_timeout=args.boot_timeout,
            timeout=args.timeout,
            show_boot=args.show_boot,
            notify=lambda message: print(f"run-in-vm: {message}", file=sys.stderr, flush=True),
        )
    except VmError as error:
        print(f"run-in-vm: {error}", file=sys.stderr)
        return EXIT_VM_FAILED
    if result.timed_out:
        print(f"run-in-vm: timed out after {args.timeout:.0f} s, VM killed", file=sys.stderr)
    if args.times:
        print(
            f"run-in-vm: command started after {result.boot_seconds:.1f} s, "
            f"VM gone after {result.total_seconds:.1f} s",
            file=sys.stderr,
        )
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
