"""pytest plugin: `kernel` tests run on a real cgroup v2 kernel, in one VM boot if need be.

On a host whose cgroup2 hierarchy has the memory controller (or inside our VM,
``OOMGUARD_IN_VM=1``) kernel tests run like any other test. Elsewhere every
selected kernel test is run by ONE inner pytest inside a VM (tests/vm/vm_runner.py),
before the test loop starts, so no per-test timeout cuts the boot short. The inner
pytest records each report as a JSON line in a directory shared with the host;
each host-side kernel item then replays its in-VM verdict without running its
fixtures on the host.

Kernel tests never silently skip: if the VM cannot boot, each of them fails with
the reason, and a skip inside the VM is a failure unless the test says
``@pytest.mark.kernel(allow_skip=True)``.

Tests marked ``vm`` boot VMs of their own from the host (the test bed's own tests).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Generator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import vm_runner

# Set for the inner pytest: JSON lines of its reports go there.
RESULTS_ENV = "OOMGUARD_VM_RESULTS"
# "vm" or "direct" overrides the choice made from the host's cgroups.
MODE_ENV = "OOMGUARD_VM_MODE"
# Seconds for the whole in-VM batch, boot included. The full kernel tier took 3,460 and
# 3,506 s in the last two fresh-clone CI runs (software emulation on a shared host), too
# close to the 3,600 s this was; 4,500 s still leaves the CI's other stages (about 10 min)
# inside its 90 min.
TIMEOUT_ENV = "OOMGUARD_VM_TIMEOUT"
DEFAULT_BATCH_TIMEOUT = 4500.0

_MODE = pytest.StashKey[str]()
_BATCH = pytest.StashKey["Batch"]()


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What a host-side kernel item reports: pytest outcome, message, duration, captured output."""

    outcome: str  # "passed" | "failed" | "skipped" | "xfailed"
    message: str = ""
    duration: float = 0.0
    sections: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass
class Batch:
    """The in-VM run: per-nodeid reports, or the reason there are none."""

    records: dict[str, list[dict[str, Any]]]
    error: str | None
    log: Path | None
    seconds: float
    nodeids: tuple[str, ...] = ()  # the kernel tests sent to the VM


# ------------------------------------------------------------------ pure result mapping


def verdict_for(records: Sequence[Mapping[str, Any]] | None, *, allow_skip: bool) -> Verdict:
    """Map one test's in-VM reports (setup/call/teardown) to the host's verdict."""
    if not records:
        return Verdict("failed", "no result came back from the VM for this test")
    by_phase = {record["when"]: record for record in records}
    duration = sum(float(record.get("duration", 0.0)) for record in records)
    sections = tuple(
        (str(title), str(text))
        for record in records
        for title, text in record.get("sections", ())
        if text
    )
    for when in ("setup", "call", "teardown"):
        record = by_phase.get(when)
        if record is None:
            continue
        outcome = record["outcome"]
        if outcome == "failed":
            where = "" if when == "call" else f"[in-VM {when}] "
            return Verdict("failed", where + str(record.get("longrepr", "")), duration, sections)
        if outcome == "skipped":
            if record.get("wasxfail") is not None:
                return Verdict("xfailed", str(record["wasxfail"]), duration, sections)
            reason = str(record.get("longrepr", ""))
            if allow_skip:
                return Verdict("skipped", reason, duration, sections)
            return Verdict(
                "failed",
                f"skipped inside the VM, which a kernel test may not be: {reason}\n"
                "(mark it @pytest.mark.kernel(allow_skip=True) if that is intended)",
                duration,
                sections,
            )
    if by_phase.get("call", {}).get("outcome") != "passed":
        return Verdict("failed", "the VM reported no call phase for this test", duration, sections)
    return Verdict("passed", "", duration, sections)


def group_records(lines: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """JSON lines of in-VM reports -> reports per nodeid (a torn last line is ignored)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "nodeid" in record:
            grouped.setdefault(record["nodeid"], []).append(record)
    return grouped


def record_of(report: pytest.TestReport) -> dict[str, Any]:
    longrepr: Any = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (file, line, reason)
        text = str(longrepr[2]).removeprefix("Skipped: ")
    else:
        text = report.longreprtext
    return {
        "nodeid": report.nodeid,
        "when": report.when,
        "outcome": report.outcome,
        "longrepr": text,
        "wasxfail": getattr(report, "wasxfail", None),
        "duration": report.duration,
        "sections": [list(section) for section in report.sections],
    }


# ------------------------------------------------------------------------ hooks


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "vm: boots VMs of its own from the host (tests of the VM test bed; slow)",
    )
    forced = os.environ.get(MODE_ENV, "")
    if forced not in ("", "vm", "direct"):
        raise pytest.UsageError(f"${MODE_ENV} must be 'vm' or 'direct', not {forced!r}")
    if vm_runner.in_vm():  # never nest VMs
        config.stash[_MODE] = "direct"
    elif forced:
        config.stash[_MODE] = forced
    elif vm_runner.host_has_cgroup2_memory():
        config.stash[_MODE] = "direct"
    else:
        config.stash[_MODE] = "vm"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Inside the VM: append each report to the shared results file."""
    path = os.environ.get(RESULTS_ENV)
    if path and vm_runner.in_vm():
        with Path(path).open("a") as results:
            results.write(json.dumps(record_of(report)) + "\n")


def _kernel_items(session: pytest.Session) -> list[pytest.Item]:
    return [item for item in session.items if item.get_closest_marker("kernel") is not None]


def _size_bytes(size: str) -> int:
    """``2G``/``6144M`` (qemu's spelling) in bytes."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    number, unit = size[:-1], size[-1:].upper()
    if unit not in units or not number.isdigit():
        raise pytest.UsageError(f"VM memory must look like 2G or 6144M, not {size!r}")
    return int(number) * units[unit]


def batch_memory(items: Sequence[pytest.Item]) -> str:
    """The VM's memory for a batch: the largest ``@pytest.mark.kernel(memory=...)`` among its
    tests (the real-node tier needs a node's worth), else the test bed's default."""
    sizes = [vm_runner.DEFAULT_MEMORY]
    for item in items:
        marker = item.get_closest_marker("kernel")
        if marker is not None and marker.kwargs.get("memory"):
            sizes.append(str(marker.kwargs["memory"]))
    return max(sizes, key=_size_bytes)


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, object, object]:
    config = session.config
    items = _kernel_items(session)
    if (
        config.stash[_MODE] == "vm"
        and items
        and not config.option.collectonly
        and not (session.testsfailed and not config.option.continue_on_collection_errors)
    ):
        config.stash[_BATCH] = _run_batch(config, items)
    return (yield)


def _say(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    if capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)
    else:
        reporter.write_line(line)


def _run_batch(config: pytest.Config, items: Sequence[pytest.Item]) -> Batch:
    workdir = Path(tempfile.mkdtemp(prefix="oomguard-kernel-tests-"))
    log = workdir / "vm-output.log"
    results = workdir / "results.jsonl"
    rootdir = config.rootpath
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(rootdir),
        "-rA",
        *[item.nodeid for item in items],
    ]
    timeout = float(os.environ.get(TIMEOUT_ENV, DEFAULT_BATCH_TIMEOUT))
    memory = batch_memory(items)
    _say(config, f"kernel tests: running {len(items)} in a {memory} VM (output: {log}) ...")
    start = time.monotonic()
    error: str | None = None
    with log.open("wb") as output:
        try:
            result = vm_runner.run_in_vm(
                argv,
                cwd=rootdir,
                env={RESULTS_ENV: str(results)},
                memory=memory,
                rwdirs=[workdir],
                timeout=timeout,
                stdout=output,
                stderr=output,
                notify=lambda message: _say(config, f"kernel tests: {message}"),
            )
        except vm_runner.VmError as failure:
            error = str(failure)
        else:
            if result.timed_out:
                error = f"the in-VM test run exceeded {timeout:.0f} s (${TIMEOUT_ENV})"
            elif result.returncode not in (0, 1):  # 1 = some tests failed: they say which
                error = f"the in-VM pytest exited with status {result.returncode}"
    seconds = time.monotonic() - start
    try:
        records = group_records(results.read_text().splitlines())
    except OSError:
        records = {}
    _say(
        config,
        f"kernel tests: VM run finished in {seconds:.0f} s" + (f": {error}" if error else ""),
    )
    return Batch(records, error, log, seconds, tuple(item.nodeid for item in items))


def _log_tail(log: Path | None, lines: int = 40) -> str:
    if log is None:
        return ""
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    marker = item.get_closest_marker("kernel")
    if marker is None or item.config.stash[_MODE] != "vm":
        return None
    batch = item.config.stash.get(_BATCH, None)
    if batch is None:
        verdict = Verdict("failed", "kernel test bed: the VM batch did not run")
    else:
        verdict = verdict_for(
            batch.records.get(item.nodeid), allow_skip=bool(marker.kwargs.get("allow_skip"))
        )
        if verdict.outcome == "failed" and batch.error:
            verdict = dataclasses.replace(
                verdict,
                message=f"kernel test bed: {batch.error}\n{verdict.message}\n"
                f"--- last lines of {batch.log} ---\n{_log_tail(batch.log)}",
            )
        elif verdict.outcome == "failed" and batch.log is not None:
            verdict = dataclasses.replace(
                verdict, message=f"{verdict.message}\n(full VM output: {batch.log})"
            )
    _replay(item, verdict)
    return True


def _replay(item: pytest.Item, verdict: Verdict) -> None:
    ihook = item.ihook
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for title, text in verdict.sections:
        item.add_report_section("call", f"in VM: {title}", text)

    def call() -> None:
        if verdict.outcome == "failed":
            pytest.fail(verdict.message, pytrace=False)
        if verdict.outcome == "skipped":
            skip = pytest.skip.Exception(verdict.message)
            skip._use_item_location = True  # report the test's file:line, not ours
            raise skip
        if verdict.outcome == "xfailed":
            pytest.xfail(verdict.message)

    for when, function in (("setup", _nothing), ("call", call), ("teardown", _nothing)):
        info = pytest.CallInfo.from_call(function, when=when)  # type: ignore[arg-type]
        if when == "call":
            info.duration = verdict.duration
        report = ihook.pytest_runtest_makereport(item=item, call=info)
        ihook.pytest_runtest_logreport(report=report)
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)


def _nothing() -> None:
    return None


def pytest_unconfigure(config: pytest.Config) -> None:
    batch = config.stash.get(_BATCH, None)
    if batch is not None and batch.log is not None and batch.error is None:
        # a test with no result back failed too: keep the log that says why
        failed = any(
            verdict_for(batch.records.get(nodeid), allow_skip=True).outcome == "failed"
            for nodeid in {*batch.nodeids, *batch.records}
        )
        if not failed:
            shutil.rmtree(batch.log.parent, ignore_errors=True)
