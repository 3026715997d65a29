"""The shipped `oomguard` lists only what a node or a cluster runs; the demo runs apart."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from oomguard.cli import COMMANDS, main

REPO = Path(__file__).resolve().parents[2]
DEVELOPER_ONLY = {"demo"}


def test_help_lists_no_developer_only_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    listed = set(re.findall(r"^    (\S+)", out, re.M))  # wrapped help is indented deeper
    assert listed == set(COMMANDS) == {"monitor", "status", "guard", "operator"}
    assert not DEVELOPER_ONLY & listed
    assert "demo" not in out and "VM" not in out


def test_demo_is_not_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'demo'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "oomguard.monitor.modes.demo_command"],  # what scripts/demo runs
        ["-m", "oomguard", "demo"],  # how the demo re-runs itself inside the VM
    ],
    ids=["scripts-demo", "vm-reentry"],
)
def test_the_demo_module_runs_on_its_own(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, *command, "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: scripts/demo ")
    assert "--workers" in result.stdout and "--vm-memory" in result.stdout


def test_scripts_demo_runs_the_module_not_a_subcommand() -> None:
    last = (REPO / "scripts" / "demo").read_text().strip().splitlines()[-1]
    assert last == 'exec .venv/bin/python -m oomguard.monitor.modes.demo_command "$@"'
