"""The real-kernel test bed: the VM really is cgroup v2 with memory, run-in-vm keeps its
promises (status, output, shared dirs, loud failures), and the plugin maps in-VM reports
to host verdicts without ever turning a failure or a skip into a pass."""

import json
import os
import re
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import vm_pytest_plugin
import vm_runner
from vm_pytest_plugin import Verdict, group_records, verdict_for

RUN_IN_VM = Path(__file__).resolve().parent / "run-in-vm"

not_inside_the_vm = pytest.mark.skipif(
    vm_runner.in_vm(), reason="boots a VM of its own; nested emulation is far too slow"
)
# A `vm` test may first queue for a host VM slot (up to $OOMGUARD_VM_SLOT_WAIT, 3600 s),
# then boot; run-in-vm's own timeouts bound the VM itself.
vm_test_timeout = pytest.mark.timeout(vm_runner.DEFAULT_SLOT_WAIT + 900)


# ----------------------------------------------------------------- kernel: the VM is real


def _cgroup_root() -> Path:
    mounts = vm_runner.cgroup2_mounts(Path("/proc/self/mountinfo").read_text())
    roots = [Path(m) for m in mounts if "memory" in _read(Path(m) / "cgroup.controllers").split()]
    assert roots, f"no cgroup2 mount with the memory controller among {mounts}"
    return roots[0]


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _events(cgroup: Path) -> dict[str, int]:
    pairs = (line.split() for line in (cgroup / "memory.events").read_text().splitlines())
    return {key: int(value) for key, value in pairs}


@pytest.mark.kernel
def test_cgroup2_has_the_memory_controller_for_children():
    root = _cgroup_root()
    assert "memory" in (root / "cgroup.controllers").read_text().split()
    assert "memory" in (root / "cgroup.subtree_control").read_text().split()


@pytest.mark.kernel
def test_the_guest_root_is_shared_over_virtiofs_not_uncached_9p():
    """Over 9p every file Python loads from the host is an uncached round trip, and the
    kernel tier took about 3.5x as long; virtiofsd from tests/vm/setup avoids that."""
    root_type = vm_runner.root_filesystem_type(Path("/proc/self/mountinfo").read_text())
    assert root_type == "virtiofs"


@pytest.mark.kernel
def test_memory_high_throttles_a_toucher_and_counts_high_events():
    cgroup = _cgroup_root() / f"oomguard-test-{uuid.uuid4().hex[:8]}"
    cgroup.mkdir()
    toucher = None
    try:
        (cgroup / "memory.high").write_text(str(64 * 1024 * 1024))
        assert _events(cgroup)["high"] == 0
        # The child joins the cgroup before it allocates: 200 MiB, one write per page.
        toucher = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys\n"
                "open(sys.argv[1], 'w').write('0')\n"
                "buf = bytearray(200 * 1024 * 1024)\n"
                "for i in range(0, len(buf), 4096): buf[i] = 1\n",
                str(cgroup / "cgroup.procs"),
            ]
        )
        deadline = time.monotonic() + 60
        while _events(cgroup)["high"] == 0 and time.monotonic() < deadline:
            assert toucher.poll() is None, "the toucher ended before memory.high was hit"
            time.sleep(0.05)
        events = _events(cgroup)
        assert events["high"] > 0, events
        assert events["oom_kill"] == 0, events
        assert int((cgroup / "memory.current").read_text()) > 32 * 1024 * 1024
    finally:
        if toucher is not None:
            (cgroup / "cgroup.kill").write_text("1")
            toucher.wait(timeout=30)
        cgroup.rmdir()


# ----------------------------------------------------- vm: run-in-vm, booted from the host


@pytest.mark.vm
@not_inside_the_vm
@vm_test_timeout
def test_run_in_vm_returns_status_output_and_shared_files(tmp_path):
    shared = tmp_path / "out"
    script = (
        "echo to-stdout; echo to-stderr >&2; "
        f"cat /sys/fs/cgroup/cgroup.controllers > {shared}/controllers; "
        f'echo "$OOMGUARD_IN_VM $(pwd)" > {shared}/where; exit 7'
    )
    completed = subprocess.run(
        [str(RUN_IN_VM), "--rwdir", str(shared), "--timeout", "600", "--", "sh", "-c", script],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 7, completed.stderr
    assert completed.stdout == "to-stdout\n"
    assert completed.stderr == "to-stderr\n"
    assert "memory" in (shared / "controllers").read_text().split()
    assert (shared / "where").read_text() == f"1 {vm_runner.REPO_ROOT}\n"


@pytest.mark.vm
@not_inside_the_vm
@vm_test_timeout
def test_run_in_vm_fails_loudly_when_the_kernel_cannot_boot(tmp_path):
    not_a_kernel = tmp_path / "vmlinuz-0.0.0"
    not_a_kernel.write_bytes(b"\0" * 4096)
    env = dict(os.environ, OOMGUARD_VM_KERNEL=str(not_a_kernel))
    completed = subprocess.run(
        [str(RUN_IN_VM), "--boot-timeout", "120", "--", "true"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert completed.returncode == vm_runner.EXIT_VM_FAILED
    # qemu rejects the image at once, or the boot timeout catches a hang: loud either way.
    assert re.search(r"run-in-vm: the VM did not (boot|start the command)", completed.stderr)


@pytest.mark.vm
@not_inside_the_vm
@vm_test_timeout
def test_boot_timeout_raises_and_leaves_no_qemu_behind(tmp_path):
    tag = tmp_path / "only-this-vm-shares-me"  # finds our qemu among other people's
    tag.mkdir()
    with pytest.raises(vm_runner.VmError, match="did not start the command within 2 s"):
        vm_runner.run_in_vm(
            ["true"],
            rwdirs=[tag],
            boot_timeout=2,
            stdout=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 15
    while _qemu_pids_sharing(tag):
        assert time.monotonic() < deadline, "qemu survived the boot timeout"
        time.sleep(0.1)


def _qemu_pids_sharing(path: Path) -> set[int]:
    pids = set()
    for proc in Path("/proc").iterdir():
        cmdline = _read_bytes(proc / "cmdline") if proc.name.isdigit() else b""
        if b"qemu-system" in cmdline and str(path).encode() in cmdline:
            pids.add(int(proc.name))
    return pids


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


# ------------------------------------------------------------------- unit: pure pieces


def test_cgroup2_mounts_reads_mountinfo_and_unescapes():
    text = (
        "29 23 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n"
        "30 23 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "31 23 0:28 / /mnt/with\\040space rw - cgroup2 none rw\n"
        "junk\n"
    )
    assert vm_runner.cgroup2_mounts(text) == ["/sys/fs/cgroup/unified", "/mnt/with space"]


def test_host_has_cgroup2_memory_needs_the_memory_controller(tmp_path):
    hierarchy = tmp_path / "cg"
    hierarchy.mkdir()
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"29 23 0:26 / {hierarchy} rw - cgroup2 cgroup2 rw\n")
    (hierarchy / "cgroup.controllers").write_text("hugetlb\n")
    assert not vm_runner.host_has_cgroup2_memory(mountinfo)
    (hierarchy / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    assert vm_runner.host_has_cgroup2_memory(mountinfo)


def test_guest_environment_marks_the_vm_and_keeps_writes_off_the_readonly_root(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("OOMGUARD_SOMETHING", "kept")
    monkeypatch.setenv("UNRELATED_SECRET", "dropped")
    env = vm_runner.guest_environment({"EXTRA": "x"}, tmp_path)
    assert env["OOMGUARD_IN_VM"] == "1"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HYPOTHESIS_STORAGE_DIRECTORY"].startswith(str(tmp_path))
    assert env["OOMGUARD_SOMETHING"] == "kept"
    assert env["EXTRA"] == "x"
    assert "UNRELATED_SECRET" not in env


def test_find_kernel_prefers_the_newest_version(tmp_path, monkeypatch):
    monkeypatch.delenv("OOMGUARD_VM_KERNEL", raising=False)
    names = ["vmlinuz-6.1.0-9-amd64", "vmlinuz-6.1.0-56-amd64", "vmlinuz-5.10.0-30-amd64"]
    keys = sorted((vm_runner._version_key(Path(n)), n) for n in names)
    assert keys[-1][1] == "vmlinuz-6.1.0-56-amd64"


def test_root_filesystem_type_reads_the_last_mount_at_the_root():
    mountinfo = (
        "1 0 0:1 / / ro,relatime - 9p /dev/root ro,access=any,trans=virtio\n"
        "2 1 0:2 / /proc rw - proc proc rw\n"
        "3 0 0:3 / / ro,relatime - virtiofs ROOTFS ro\n"
    )
    assert vm_runner.root_filesystem_type(mountinfo) == "virtiofs"
    assert vm_runner.root_filesystem_type(mountinfo.split("2 1")[0]) == "9p"
    assert vm_runner.root_filesystem_type("2 1 0:2 / /proc rw - proc proc rw\n") == ""


def test_a_missing_virtiofsd_is_an_error_before_any_boot(tmp_path, monkeypatch):
    monkeypatch.setattr(vm_runner, "VIRTIOFSD_ROOT", tmp_path)
    monkeypatch.setattr(vm_runner, "vng_path", lambda: Path("/bin/false"))
    with pytest.raises(vm_runner.VmError, match="virtiofsd is missing: run tests/vm/setup"):
        vm_runner.run_in_vm(["true"])


def test_a_missing_kernel_image_is_an_error_before_any_boot(tmp_path, monkeypatch):
    monkeypatch.setenv("OOMGUARD_VM_KERNEL", str(tmp_path / "no-such-vmlinuz"))
    monkeypatch.setattr(vm_runner, "vng_path", lambda: Path("/bin/false"))
    monkeypatch.setattr(vm_runner, "virtiofsd_path", lambda: Path("/bin/false"))
    with pytest.raises(vm_runner.VmError, match="no-such-vmlinuz does not exist"):
        vm_runner.run_in_vm(["true"])


def _records(nodeid, *phases):
    return [
        {"nodeid": nodeid, "when": when, "outcome": outcome, "longrepr": text, "duration": 0.5}
        for when, outcome, text in phases
    ]


def test_verdict_passes_only_a_test_whose_phases_all_passed():
    records = _records(
        "t", ("setup", "passed", ""), ("call", "passed", ""), ("teardown", "passed", "")
    )
    assert verdict_for(records, allow_skip=False) == Verdict("passed", "", 1.5, ())


@pytest.mark.parametrize("when", ["setup", "call", "teardown"])
def test_verdict_fails_with_the_in_vm_failure_text(when):
    phases = [("setup", "passed", ""), ("call", "passed", ""), ("teardown", "passed", "")]
    phases = [
        (w, "failed", "AssertionError: boom") if w == when else (w, o, t) for w, o, t in phases
    ]
    verdict = verdict_for(_records("t", *phases), allow_skip=True)
    assert verdict.outcome == "failed"
    assert "AssertionError: boom" in verdict.message
    assert (f"[in-VM {when}]" in verdict.message) == (when != "call")


def test_verdict_turns_an_in_vm_skip_into_a_failure_unless_allowed():
    records = _records("t", ("setup", "skipped", "no PSI"), ("teardown", "passed", ""))
    failed = verdict_for(records, allow_skip=False)
    assert failed.outcome == "failed"
    assert "skipped inside the VM" in failed.message and "no PSI" in failed.message
    assert verdict_for(records, allow_skip=True).outcome == "skipped"


def test_verdict_keeps_xfail_and_fails_on_missing_results():
    records = _records("t", ("setup", "passed", ""), ("call", "skipped", ""))
    records[1]["wasxfail"] = "known kernel bug"
    assert verdict_for(records, allow_skip=False) == Verdict("xfailed", "known kernel bug", 1.0, ())
    assert verdict_for(None, allow_skip=True).outcome == "failed"
    assert verdict_for([], allow_skip=True).outcome == "failed"
    only_setup = _records("t", ("setup", "passed", ""))
    assert verdict_for(only_setup, allow_skip=True).outcome == "failed"


def test_group_records_ignores_a_torn_last_line():
    lines = [json.dumps(r) for r in _records("a", ("setup", "passed", ""), ("call", "passed", ""))]
    lines += [json.dumps(_records("b", ("call", "failed", "x"))[0]), '{"nodeid": "b", "wh']
    grouped = group_records(lines)
    assert sorted(grouped) == ["a", "b"]
    assert len(grouped["a"]) == 2 and len(grouped["b"]) == 1


# -------------------------------------------- plugin wiring on the host, with a fake VM


_FAKE_VM_CONFTEST = """
import json, os, sys
from pathlib import Path
sys.path.insert(0, {vm_dir!r})
import vm_runner

def fake_run_in_vm(argv, *, env, rwdirs, stdout, **kwargs):
    Path(os.environ["FAKE_VM_ARGV"]).write_text(json.dumps(list(argv)))
    if os.environ.get("FAKE_VM_BROKEN"):
        raise vm_runner.VmError("the VM did not boot: no exit status came back")
    with open(env["OOMGUARD_VM_RESULTS"], "w") as results:
        for nodeid in [a for a in argv if "::" in a]:
            outcome = ("failed" if "fails" in nodeid
                       else "skipped" if "skips" in nodeid else "passed")
            for when in ("setup", "call", "teardown"):
                phase = outcome if when == "call" else "passed"
                text = "in-VM text for " + nodeid if phase != "passed" else ""
                results.write(json.dumps({{"nodeid": nodeid, "when": when, "outcome": phase,
                                          "longrepr": text, "duration": 0.1}}) + "\\n")
    return vm_runner.VmResult(1, False, 20.0, 25.0)

vm_runner.run_in_vm = fake_run_in_vm
pytest_plugins = ["vm_pytest_plugin"]
"""

_FAKE_VM_TESTS = """
import pytest

def test_plain_runs_on_the_host():
    pass

@pytest.mark.kernel
def test_k_passes():
    raise AssertionError("the host must not run a kernel test itself")

@pytest.mark.kernel
def test_k_fails():
    pass

@pytest.mark.kernel
def test_k_skips():
    pass

@pytest.mark.kernel(allow_skip=True)
def test_k_skips_allowed():
    pass
"""


def _run_fake_vm_session(tmp_path, broken):
    (tmp_path / "conftest.py").write_text(
        _FAKE_VM_CONFTEST.format(vm_dir=str(Path(vm_runner.__file__).parent))
    )
    (tmp_path / "test_fake.py").write_text(textwrap.dedent(_FAKE_VM_TESTS))
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    kernel: k\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OOMGUARD_IN_VM", "PYTEST_ADDOPTS")}
    env.update(OOMGUARD_VM_MODE="vm", FAKE_VM_ARGV=str(tmp_path / "argv.json"))
    if broken:
        env["FAKE_VM_BROKEN"] = "1"
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "--strict-markers"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    argv = json.loads((tmp_path / "argv.json").read_text())
    return completed.stdout, argv


def test_plugin_reports_each_kernel_test_from_one_vm_run(tmp_path):
    output, argv = _run_fake_vm_session(tmp_path, broken=False)
    kernel_ids = [a for a in argv if "::" in a]
    assert kernel_ids == [
        "test_fake.py::test_k_passes",
        "test_fake.py::test_k_fails",
        "test_fake.py::test_k_skips",
        "test_fake.py::test_k_skips_allowed",
    ]
    assert "PASSED test_fake.py::test_plain_runs_on_the_host" in output
    assert "PASSED test_fake.py::test_k_passes" in output
    assert "FAILED test_fake.py::test_k_fails" in output
    assert "\nin-VM text for test_fake.py::test_k_fails\n" in output
    assert "FAILED test_fake.py::test_k_skips" in output
    assert "skipped inside the VM, which a kernel test may not be" in output
    assert (
        "SKIPPED [1] test_fake.py:19: in-VM text for test_fake.py::test_k_skips_allowed" in output
    )
    assert "2 failed, 2 passed, 1 skipped" in output


def test_plugin_fails_every_kernel_test_when_the_vm_cannot_boot(tmp_path):
    output, _ = _run_fake_vm_session(tmp_path, broken=True)
    assert output.count("kernel test bed: the VM did not boot") >= 4
    assert "4 failed, 1 passed" in output


def test_plugin_rejects_an_unknown_mode(monkeypatch):
    monkeypatch.setenv(vm_pytest_plugin.MODE_ENV, "bogus")
    monkeypatch.delenv("OOMGUARD_IN_VM", raising=False)

    class FakeConfig:
        stash = pytest.Stash()

        def addinivalue_line(self, name, line):
            pass

    with pytest.raises(pytest.UsageError):
        vm_pytest_plugin.pytest_configure(FakeConfig())


def test_vm_slots_make_extra_runs_wait_then_fail_loudly(tmp_path, monkeypatch):
    monkeypatch.setattr(vm_runner, "SLOT_DIR", tmp_path)
    monkeypatch.setenv(vm_runner.SLOTS_ENV, "1")
    monkeypatch.setenv(vm_runner.SLOT_WAIT_ENV, "1")
    heard = []
    with vm_runner.vm_slot() as held:
        assert held == 0
        # flock is per open file description: a second open in this process contends too.
        with (
            pytest.raises(vm_runner.VmError, match="no free VM slot"),
            vm_runner.vm_slot(heard.append),
        ):
            pass
    assert heard and "waiting for a free VM slot" in heard[0]
    with vm_runner.vm_slot() as again:
        assert again == 0


def test_vm_slots_default_to_half_the_cores(monkeypatch):
    monkeypatch.delenv(vm_runner.SLOTS_ENV, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert vm_runner.vm_slots() == 1
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert vm_runner.vm_slots() == 4


def test_watchdog_kills_the_whole_group_when_the_host_side_dies(tmp_path):
    pidfile = tmp_path / "pid"
    watchdog = subprocess.Popen(
        [
            sys.executable,
            vm_runner.__file__,
            "--watchdog",
            "--",
            "sh",
            "-c",
            f"sleep 600 & echo $! > {pidfile}; wait",
        ],
        stdin=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while not pidfile.exists() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline, "the watched command did not start"
        time.sleep(0.05)
    grandchild = int(pidfile.read_text())
    watchdog.stdin.close()  # what the kernel does when the host process is killed
    assert watchdog.wait(timeout=30) != 0
    deadline = time.monotonic() + 15
    while Path(f"/proc/{grandchild}").exists() and b"sleep" in _read_bytes(
        Path(f"/proc/{grandchild}/cmdline")
    ):
        assert time.monotonic() < deadline, "the grandchild outlived the watchdog"
        time.sleep(0.05)


class _Item:
    """Just enough of a pytest item for batch_memory."""

    def __init__(self, **kernel_kwargs):
        self.marker = pytest.mark.kernel(**kernel_kwargs).mark

    def get_closest_marker(self, name):
        return self.marker if name == "kernel" else None


def test_batch_memory_is_the_largest_a_test_asks_for():
    assert vm_pytest_plugin.batch_memory([_Item(), _Item()]) == vm_runner.DEFAULT_MEMORY
    assert vm_pytest_plugin.batch_memory([_Item(), _Item(memory="6G"), _Item(memory="3072M")]) == (
        "6G"
    )
    assert vm_pytest_plugin.batch_memory([_Item(memory="1G")]) == vm_runner.DEFAULT_MEMORY
    with pytest.raises(pytest.UsageError, match="2G or 6144M"):
        vm_pytest_plugin.batch_memory([_Item(memory="lots")])
