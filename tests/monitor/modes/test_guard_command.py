"""`oomguard guard` argument handling (the kernel part is in test_guard_kernel.py)."""

import pytest

from oomguard.cli import build_parser, main
from oomguard.monitor.modes.guard_command import kernel_version
from oomguard.monitor.triggers.kinds.event import EVENT
from oomguard.monitor.triggers.kinds.threshold import THRESHOLD


def parse(*argv):
    return build_parser().parse_args(["guard", *argv])


def test_sizes_and_command_are_parsed():
    args = parse(
        "--memory-high",
        "200Mi",
        "--memory-max",
        "1G",
        "--grace",
        "1.5",
        "--",
        "python3",
        "-c",
        "pass",
    )
    assert args.memory_high == 200 * 2**20
    assert args.memory_max == 10**9
    assert args.grace == 1.5
    assert args.command == ["--", "python3", "-c", "pass"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--memory-high", "lots", "--", "true"], "invalid size 'lots'"),
        (["--memory-high", "1G", "--grace", "-1", "--", "true"], "seconds must be >= 0"),
        (["--", "true"], "--memory-high"),
        (["--memory-high", "1G", "--log-format", "xml", "--", "true"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--memory-high", "1G"], "missing -- COMMAND"),
        (["--memory-high", "1G", "--cgroup", "x", "--", "true"], "not both"),
        (["--memory-high", "1G", "--memory-max", "1G", "--", "true"], "must be above"),
    ],
)
def test_inconsistent_arguments_exit_2(argv, message, capsys):
    assert main(["guard", *argv]) == 2
    assert message in capsys.readouterr().err


def test_cgroup_and_parent_are_exclusive(capsys):
    with pytest.raises(SystemExit):
        parse("--memory-high", "1G", "--cgroup", "a", "--parent", "b")


@pytest.mark.parametrize(
    ("release", "version"),
    [
        ("6.1.0-56-amd64", (6, 1)),
        ("5.9.0", (5, 9)),
        ("4.19.0-rc1", (4, 19)),
        ("5.10+", (5, 10)),
        ("junk", (0, 0)),
        ("6", (0, 0)),
    ],
)
def test_kernel_version(release, version):
    assert kernel_version(release) == version


def _settings_of(argv, monkeypatch):
    """The GuardSettings run() builds, captured before anything touches a cgroup."""
    from oomguard.monitor.modes import guard_command

    seen = {}

    def capture(args, settings, command, relay):
        seen["settings"] = settings
        return 0

    monkeypatch.setattr(guard_command, "_guard_command", capture)
    monkeypatch.setattr(guard_command, "kernel_version", lambda release=None: (6, 1))
    assert main(["guard", "--memory-high", "100Mi", *argv, "--", "true"]) == 0
    return seen["settings"]


def test_default_monitors_are_event_and_threshold_with_memory_high(monkeypatch):
    settings = _settings_of([], monkeypatch)
    assert settings.monitors.get(EVENT)
    assert settings.monitors.get(THRESHOLD) is not None
    assert settings.monitors.get(THRESHOLD).interval_s == 1.0  # the event monitor's backup
    assert settings.memory_high_to_write == 100 * 2**20


@pytest.mark.parametrize(
    "flags",
    [["--monitors", "threshold"], ["--no-memory-high"], ["--dry-run"]],
    ids=["threshold-only", "no-memory-high", "dry-run"],
)
def test_where_the_threshold_monitor_is_the_guard_it_polls_every_tenth_second(flags, monkeypatch):
    """No event monitor watches the line (not asked, or no memory.high to cross): the
    threshold monitor is what reacts, so it keeps its fast period."""
    settings = _settings_of(flags, monkeypatch)
    assert not settings.monitors.get(EVENT)
    assert settings.monitors.get(THRESHOLD).interval_s == 0.1


def test_an_asked_threshold_interval_is_kept_beside_the_event_monitor(monkeypatch):
    settings = _settings_of(["--threshold-interval", "0.1"], monkeypatch)
    assert settings.monitors.get(EVENT)
    assert settings.monitors.get(THRESHOLD).interval_s == 0.1


def test_threshold_only_polling_guard(monkeypatch):
    settings = _settings_of(
        ["--monitors", "threshold", "--threshold-interval", "0.25", "--no-memory-high"],
        monkeypatch,
    )
    assert not settings.monitors.get(EVENT)
    assert settings.monitors.get(THRESHOLD) is not None
    assert settings.monitors.get(THRESHOLD).interval_s == 0.25
    assert settings.monitors.get(THRESHOLD).limit_bytes == 100 * 2**20
    assert settings.memory_high_to_write is None


def test_event_only(monkeypatch):
    settings = _settings_of(["--monitors", "event"], monkeypatch)
    assert settings.monitors.get(EVENT)
    assert settings.monitors.get(THRESHOLD) is None


def test_dry_run_writes_no_memory_high(monkeypatch):
    settings = _settings_of(["--dry-run"], monkeypatch)
    assert settings.memory_high_to_write is None
    assert not settings.monitors.get(EVENT)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--monitors", "event,psi"], "monitors must be"),
        (["--monitors", ","], "monitors must be"),
        (["--threshold-interval", "0"], "seconds must be > 0"),
    ],
)
def test_bad_monitor_options(argv, message, capsys):
    with pytest.raises(SystemExit):
        parse("--memory-high", "1G", *argv, "--", "true")
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--dry-run", "--no-memory-high"])
def test_a_guard_without_memory_high_needs_the_threshold_monitor(flag, capsys):
    """No line is written, so the event monitor has nothing to wait for: event alone would
    leave the guard blind."""
    assert main(["guard", "--memory-high", "1G", flag, "--monitors", "event", "--", "true"]) == 2
    assert f"{flag} sets no memory.high, so it needs the threshold monitor" in (
        capsys.readouterr().err
    )


def test_no_memory_high_keeps_only_the_threshold_monitor(monkeypatch):
    settings = _settings_of(["--no-memory-high"], monkeypatch)
    assert settings.memory_high_to_write is None
    assert not settings.monitors.get(EVENT)
    assert settings.monitors.get(THRESHOLD) is not None


def test_polling_without_memory_high_is_allowed_on_old_kernels(monkeypatch, capsys):
    from oomguard.monitor.modes import guard_command

    monkeypatch.setattr(guard_command, "kernel_version", lambda release=None: (5, 4))
    monkeypatch.setattr(guard_command, "_guard_command", lambda args, settings, command, relay: 0)
    assert main(["guard", "--memory-high", "1G", "--", "true"]) == 2
    assert "older than 5.9" in capsys.readouterr().err
    argv = ["guard", "--memory-high", "1G", "--no-memory-high", "--monitors", "threshold"]
    assert main([*argv, "--", "true"]) == 0


def test_signal_relay_records_before_and_forwards_after_the_command_starts():
    import os
    import signal
    import subprocess
    import sys

    from oomguard.monitor.modes.guard_command import SignalRelay

    before = signal.getsignal(signal.SIGHUP)
    with SignalRelay.installed() as relay:
        os.kill(os.getpid(), signal.SIGHUP)  # during set-up: only recorded
        assert relay.received == [signal.SIGHUP]
        assert relay.stop.is_set()
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        relay.forward_to(child)
        os.kill(os.getpid(), signal.SIGTERM)
        assert child.wait(timeout=60) == -signal.SIGTERM
    assert relay.received == [signal.SIGHUP, signal.SIGTERM]
    assert signal.getsignal(signal.SIGHUP) is before


def test_report_carries_the_settings_and_what_the_run_did():
    from types import SimpleNamespace

    from oomguard.monitor.modes.guard import GuardSettings
    from oomguard.monitor.modes.guard_command import _report

    settings = GuardSettings(
        memory_high=200, memory_max=300, buffer=10, grace=1.5, in_flight_timeout=3.0, dry_run=True
    )
    guard = SimpleNamespace(decisions=["d"], errors=["e"])
    target = SimpleNamespace(records=["r"])
    report = _report(
        settings,
        SimpleNamespace(path="/cg"),
        guard,
        target,
        command=("sleep", "1"),
        exit_status=3,
        started_at=7.0,
        events_start={"high": 0},
        events_final={"high": 2},
    )
    assert (report.command, report.cgroup, report.exit_status, report.started_at) == (
        ("sleep", "1"),
        "/cg",
        3,
        7.0,
    )
    assert (report.memory_high, report.memory_max, report.buffer, report.grace) == (
        200,
        300,
        10,
        1.5,
    )
    assert report.dry_run is True
    assert (report.victims, report.decisions, report.errors) == (["r"], ["d"], ["e"])
    assert (report.memory_events_start, report.memory_events_final) == ({"high": 0}, {"high": 2})
