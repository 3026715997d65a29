"""`oomguard guard` argument handling (the kernel part is in test_guard_kernel.py)."""

import pytest

from oomguard.cli import build_parser, main
from oomguard.monitor.modes.guard_command import kernel_version


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
