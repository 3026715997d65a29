"""The GitHub Actions workflows: actionlint clean, and they do what the release needs.

They cannot run here, so actionlint (built from its Go module by tests/tools/build) checks
their syntax, expressions, action inputs and, through shellcheck, every `run:` script.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
ACTIONLINT = REPO / "tests" / "tools" / "cache" / "bin" / "actionlint"


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    assert ACTIONLINT.exists(), f"{ACTIONLINT} missing: run tests/tools/build (scripts/setup does)"
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck missing: scripts/setup installs it (Debian's shellcheck)"
    return subprocess.run(
        [str(ACTIONLINT), "-no-color", "-shellcheck", shellcheck, "-pyflakes=", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=REPO,
    )


def test_the_release_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "release.yml"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_actionlint_reports_nothing(workflow: Path) -> None:
    result = actionlint(workflow)
    assert result.returncode == 0 and not result.stdout, result.stdout + result.stderr


def test_actionlint_reports_a_broken_workflow(tmp_path: Path) -> None:
    """The check can fail: an unknown input, a bad expression and a shell bug are all found."""
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\n"
        "jobs:\n"
        "  a:\n"
        "    runs-on: ubuntu-24.04\n"
        "    steps:\n"
        "      - uses: actions/checkout@v6\n"
        "        with: {no-such-input: 1}\n"
        "      - run: echo ${{ github.no_such_context }}\n"
        "      - run: cd $HOME/a b\n"
    )
    result = actionlint(broken)
    assert result.returncode == 1
    for finding in ("no-such-input", "no_such_context", "SC2086"):
        assert finding in result.stdout


def _load(name: str) -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load((REPO / ".github" / "workflows" / name).read_text())
    return data


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in job["steps"])


def _uses(job: dict[str, Any]) -> list[str]:
    return [str(step["uses"]).split("@")[0] for step in job["steps"] if "uses" in step]


def test_ci_runs_the_test_command_on_pull_requests_and_main() -> None:
    ci = _load("ci.yml")
    triggers = ci[True]  # YAML 1.1 reads the key `on` as true
    assert "pull_request" in triggers and triggers["push"]["branches"] == ["main"]
    assert "bash scripts/test" in _runs(ci["jobs"]["test"])
    assert "bash scripts/lock --check" in _runs(ci["jobs"]["lock"])
    bounds = ci["jobs"]["dependency-bounds"]
    assert bounds["strategy"]["matrix"]["bound"] == ["lowest", "highest"]
    assert "scripts/check-dependency-bounds" in _runs(bounds)


def test_release_builds_signs_and_publishes_every_artifact() -> None:
    release = _load("release.yml")
    assert release[True]["push"]["tags"] == ["v*"]
    jobs = release["jobs"]
    build = next(s for s in jobs["image"]["steps"] if "build-push-action" in s.get("uses", ""))
    assert build["with"]["platforms"] == "linux/amd64,linux/arm64"
    assert build["with"]["push"] is True and build["with"]["sbom"] is True
    assert build["with"]["provenance"] == "mode=max"
    assert "cosign sign --yes" in _runs(jobs["image"])
    assert jobs["image"]["permissions"]["id-token"] == "write"
    assert "helm push" in _runs(jobs["chart"])
    assert release["env"]["CHART_REGISTRY"] == "oci://ghcr.io/oomguard/charts"
    assert "pypa/gh-action-pypi-publish" in _uses(jobs["pypi"])
    assert jobs["pypi"]["permissions"] == {"id-token": "write"}
    assert "scripts/changelog-notes" in _runs(jobs["check"])
    assert "gh release create" in _runs(jobs["github-release"])


def test_release_image_is_the_charts_default_image() -> None:
    values = yaml.safe_load((REPO / "helm" / "oomguard" / "values.yaml").read_text())
    assert _load("release.yml")["env"]["IMAGE"] == values["image"]["repository"]
