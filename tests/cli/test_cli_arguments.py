"""Every subcommand's command line: help on every flag, values checked when the arguments are
parsed (naming the flag, in the same words on every subcommand), unknown flags reported as
unknown, and the logging options on every long-running command."""

from __future__ import annotations

import argparse
import io
import json
import logging
from collections.abc import Iterator

import pytest

from oomguard.cli import COMMANDS, LONG_RUNNING, build_parser, main
from oomguard.monitor.feedback.logs import LogLevel, setup_logging
from oomguard.wire import arguments


def parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    top = build_parser()
    yield "oomguard", top
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from ((f"oomguard {n}", p) for n, p in action.choices.items())


def actions() -> Iterator[tuple[str, argparse.Action]]:
    for name, parser in parsers():
        for action in parser._actions:
            if not isinstance(action, argparse._SubParsersAction):
                yield name, action


def action_ids() -> list[str]:
    return [f"{n} {'/'.join(a.option_strings) or a.dest}" for n, a in actions()]


@pytest.mark.parametrize(("command", "action"), list(actions()), ids=action_ids())
def test_every_flag_has_help(command: str, action: argparse.Action) -> None:
    assert action.help and action.help is not argparse.SUPPRESS, (
        f"{command} {action.option_strings or action.dest} has no help text"
    )


def test_every_command_is_covered() -> None:
    assert {name.split()[-1] for name, _ in parsers()} == {"oomguard", *COMMANDS}


def test_every_size_flag_is_parsed_as_a_size() -> None:
    sized = [(n, a) for n, a in actions() if a.metavar == "SIZE"]
    assert {n for n, _ in sized} == {"oomguard monitor", "oomguard guard"}
    assert all(a.type is arguments.size for _, a in sized)


def parse_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


SIZE_FLAGS = [
    (["monitor"], "--reserve"),
    (["monitor"], "--node-memory"),
    (["monitor"], "--margin"),
    (["monitor", "--mode", "sidecar"], "--memory-high"),
    (["monitor", "--mode", "sidecar"], "--buffer"),
    (["guard"], "--memory-high"),
    (["guard", "--memory-high", "1G"], "--memory-max"),
    (["guard", "--memory-high", "1G"], "--buffer"),
]


@pytest.mark.parametrize(("before", "flag"), SIZE_FLAGS, ids=[f"{b[0]} {f}" for b, f in SIZE_FLAGS])
@pytest.mark.parametrize("bad", ["12Q", "5GG", "-1Gi"])
def test_sizes_fail_at_parse_time_naming_the_flag(
    before: list[str], flag: str, bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = parse_error([*before, f"{flag}={bad}", "--", "true"], capsys)
    assert f"oomguard {before[0]}: error: argument {flag}: invalid size '{bad}'" in err


def test_monitor_and_guard_say_the_same_about_a_bad_size(
    capsys: pytest.CaptureFixture[str],
) -> None:
    monitor = parse_error(["monitor", "--reserve", "12Q"], capsys).splitlines()[-1]
    guard = parse_error(["guard", "--memory-high", "12Q"], capsys).splitlines()[-1]
    assert monitor.split("argument --reserve: ")[1] == guard.split("argument --memory-high: ")[1]


def test_sizes_arrive_as_bytes() -> None:
    args = build_parser().parse_args(["monitor", "--reserve", "1Gi", "--node-memory", "8G"])
    assert (args.reserve, args.node_memory, args.margin) == (2**30, 8 * 10**9, 64 * 2**20)


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["monitor", "--eviction-timeout", "-1"], "--eviction-timeout"),
        (["monitor", "--http-port", "70000"], "--http-port"),
        (["monitor", "--tick", "0"], "--tick"),
        (["monitor", "--mode", "sidecar", "--grace", "nan"], "--grace"),
        (["guard", "--memory-high", "1G", "--metrics-port", "-1", "--", "true"], "--metrics-port"),
        (["operator", "--resync-seconds", "0"], "--resync-seconds"),
        (["operator", "--write-concurrency", "0"], "--write-concurrency"),
        (["operator", "--webhook-port", "x"], "--webhook-port"),
    ],
)
def test_numbers_fail_at_parse_time_naming_the_flag(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert f"error: argument {flag}: " in parse_error(argv, capsys)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_unknown_flags_are_reported_as_unknown(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # guard's --memory-high is required: the unknown flag is still what gets reported
    err = parse_error([command, "--bogus"], capsys)
    assert f"oomguard {command}: error: unrecognized arguments: --bogus" in err
    assert "required" not in err


def test_an_unknown_flag_among_good_ones_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    err = parse_error(["guard", "--memory-high", "1G", "--bogus", "--", "true"], capsys)
    assert "oomguard guard: error: unrecognized arguments: --bogus" in err


def test_guard_passes_the_commands_own_flags_through() -> None:
    args = build_parser().parse_args(["guard", "--memory-high", "1G", "--", "ls", "--bogus"])
    assert args.command == ["--", "ls", "--bogus"]


def test_a_missing_required_flag_is_still_reported(capsys: pytest.CaptureFixture[str]) -> None:
    err = parse_error(["guard", "--", "true"], capsys)
    assert "required: --memory-high" in err


@pytest.mark.parametrize("command", sorted(LONG_RUNNING))
@pytest.mark.parametrize("level", list(LogLevel))
def test_log_level_on_every_long_running_command(command: str, level: LogLevel) -> None:
    required = ["--memory-high", "1G"] if command == "guard" else []
    argv = [command, *required, "--log-level", level.value, "--log-format", "json"]
    args = build_parser().parse_args(argv)
    assert (LogLevel(args.log_level), args.log_format) == (level, "json")


def test_long_running_commands_are_the_ones_that_run_until_stopped() -> None:
    assert set(COMMANDS) - LONG_RUNNING == {"status"}


def test_operator_verbose_is_debug() -> None:
    assert build_parser().parse_args(["operator"]).log_level == "info"
    assert LogLevel(build_parser().parse_args(["operator", "--verbose"]).log_level) is (
        LogLevel.DEBUG
    )


@pytest.mark.parametrize(
    "argv", [["monitor", "--log-level", "loud"], ["operator", "--log-format", "xml"]]
)
def test_bad_logging_options_fail_at_parse_time(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert f"argument {argv[1]}: invalid choice" in parse_error(argv, capsys)


# ------------------------------------------------------------------ logs


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    ours = logging.getLogger("oomguard")
    saved = (list(root.handlers), root.level, list(ours.handlers), ours.level, ours.propagate)
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    ours.handlers[:], ours.level, ours.propagate = saved[2], saved[3], saved[4]


THIRD_PARTY = ("kopf.objects", "kopf.activities.startup", "kubernetes.client.rest", "urllib3")


@pytest.mark.usefixtures("restored_logging")
def test_third_party_loggers_go_through_the_same_json_formatter() -> None:
    out = io.StringIO()
    setup_logging("json", out, level=LogLevel.DEBUG)
    logging.getLogger("oomguard.operator").info("ours")
    for name in THIRD_PARTY:
        logging.getLogger(name).debug("theirs %s", name)
    ref = {"kind": "MemoryReservePolicy", "name": "default", "namespace": None}
    logging.getLogger("kopf.objects").warning("handler failed", extra={"k8s_ref": ref})
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["logger"] for line in lines] == ["oomguard.operator", *THIRD_PARTY, "kopf.objects"]
    assert all({"ts", "level", "msg"} <= set(line) for line in lines)
    assert lines[-1]["object"] == "MemoryReservePolicy/default"
    assert lines[-1]["level"] == "warning"


@pytest.mark.usefixtures("restored_logging")
def test_third_party_text_lines_name_their_logger() -> None:
    out = io.StringIO()
    setup_logging("text", out)
    logging.getLogger("urllib3.connectionpool").warning("Retrying")
    assert out.getvalue().rstrip().endswith("WARNING Retrying logger=urllib3.connectionpool")


@pytest.mark.usefixtures("restored_logging")
def test_log_level_holds_for_every_logger() -> None:
    out = io.StringIO()
    setup_logging("json", out, level=LogLevel.WARNING)
    for name in ("oomguard.node", *THIRD_PARTY):
        logging.getLogger(name).info("hidden")
        logging.getLogger(name).warning("shown")
    msgs = [json.loads(line)["msg"] for line in out.getvalue().splitlines()]
    assert msgs == ["shown"] * (1 + len(THIRD_PARTY))


@pytest.mark.usefixtures("restored_logging")
@pytest.mark.parametrize("command", sorted(LONG_RUNNING))
def test_the_cli_sets_up_json_logs_before_the_command_runs(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib

    module = importlib.import_module(COMMANDS[command][0])

    def fake_run(args: argparse.Namespace) -> int:
        logging.getLogger("kopf.activities").debug("kopf speaks")
        logging.getLogger("urllib3.connectionpool").info("urllib3 speaks")
        return 0

    monkeypatch.setattr(module, "run", fake_run)
    argv = [command, "--log-format", "json", "--log-level", "debug"]
    if command == "guard":
        argv += ["--memory-high", "1G", "--", "true"]
    assert main(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["logger"], line["level"]) for line in lines] == [
        ("kopf.activities", "debug"),
        ("urllib3.connectionpool", "info"),
    ]
