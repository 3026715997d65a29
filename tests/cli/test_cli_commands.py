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


def test_the_demo_runs_from_the_repository() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "demo", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: scripts/demo ")
    assert "--scenario" in result.stdout and "--json" in result.stdout


def test_scripts_demo_runs_the_demo_package_not_a_subcommand() -> None:
    last = (REPO / "scripts" / "demo").read_text().strip().splitlines()[-1]
    assert last == 'exec .venv/bin/python -m demo "$@"'


def test_python_m_oomguard_demo_is_no_way_in() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "oomguard", "demo"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert "invalid choice: 'demo'" in result.stderr


def test_nothing_installed_imports_the_demo() -> None:
    folders = [REPO / "src", REPO / "monitor", REPO / "operator"]
    importers = [
        path.relative_to(REPO).as_posix()
        for folder in folders
        for path in folder.rglob("*.py")
        if re.search(r"^\s*(from|import) demo\b", path.read_text(), re.M)
    ]
    assert importers == []
    packaged = [p for f in folders for p in f.rglob("*") if "demo" in p.name]
    assert packaged == []
