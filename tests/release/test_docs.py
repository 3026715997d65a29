"""The docs a user installs from: their order, names, versions, links and numbers hold.

Commands that need a cluster are not run here; what can run here does (`oomguard --version`,
the changelog's release notes), and the sizing table is recomputed with the agent's code.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import oomguard
from oomguard.monitor.decision.kubepods_high import kubepods_high
from oomguard.monitor.settings import default_reserve_bytes

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
CHANGELOG = REPO / "CHANGELOG.md"
NAMESPACE = "oomguard-system"
DOCS = sorted(
    [README, CHANGELOG, REPO / "helm" / "oomguard" / "README.md", *(REPO / "docs").glob("*.md")]
)
NEW_DOCS = ["compatibility", "sizing", "troubleshooting", "uninstall", "faq"]
FRESH_MACHINE = [
    "scripts/demo    # set up (virtualenv, real-kernel VM) and run the demo on a real cgroup v2"
    " kernel",
    "scripts/test    # set up everything and run the whole test suite, as CI does (.ci/run)",
]
MI = 2**20


def _id(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def test_readme_order_what_it_is_then_install_then_the_two_commands() -> None:
    lines = README.read_text().splitlines()
    headings = [line for line in lines if line.startswith("## ")]
    assert headings[:2] == ["## Install", "## Demo and tests on a fresh machine"]
    first = lines.index(FRESH_MACHINE[0])
    assert lines[first + 1] == FRESH_MACHINE[1]
    assert lines.index("## Install") < first < lines.index("## How it works")
    assert first < 60, "the two fresh-machine commands belong near the top"
    intro = "\n".join(lines[: lines.index("## Install")])
    assert "memory guard" in intro


def test_readme_installs_from_the_registry_the_release_publishes() -> None:
    release = yaml.safe_load((REPO / ".github" / "workflows" / "release.yml").read_text())
    chart = f"{release['env']['CHART_REGISTRY']}/oomguard"
    readme = README.read_text()
    assert f"helm install oomguard {chart} --version {oomguard.__version__}" in readme
    assert release["env"]["IMAGE"] in readme


@pytest.mark.parametrize("doc", DOCS, ids=_id)
def test_one_namespace_name_throughout(doc: Path) -> None:
    text = doc.read_text()
    used = re.findall(r"(?:--namespace[ =]|-n |namespace: |kubectl \w+ namespace )([\w-]+)", text)
    used += re.findall(r"system:serviceaccount:([\w-]+):", text)
    assert all(name == NAMESPACE for name in used), sorted(set(used))


@pytest.mark.parametrize("doc", DOCS, ids=_id)
def test_published_versions_in_docs_are_the_package_version(doc: Path) -> None:
    text = doc.read_text()
    versions = re.findall(r"oci://ghcr\.io/oomguard/charts/oomguard --version (\S+)", text)
    versions += re.findall(r"ghcr\.io/oomguard/oomguard:(\S+?)[`\s]", text)
    assert all(v == oomguard.__version__ for v in versions), versions


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"(?ms)^```.*?^```", "", path.read_text())
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


@pytest.mark.parametrize("doc", DOCS, ids=_id)
def test_relative_links_and_anchors_resolve(doc: Path) -> None:
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        file_part, _, anchor = target.partition("#")
        path = (doc.parent / file_part).resolve() if file_part else doc
        if not path.exists() or (anchor and path.suffix == ".md" and anchor not in _anchors(path)):
            broken.append(target)
    assert not broken


def test_readme_links_every_operating_doc_and_the_changelog() -> None:
    readme = README.read_text()
    for name in NEW_DOCS:
        assert (REPO / "docs" / f"{name}.md").is_file()
        assert f"(docs/{name}.md)" in readme
    assert "(CHANGELOG.md)" in readme and "(LICENSE)" in readme


def test_changelog_is_keep_a_changelog_with_this_version() -> None:
    text = CHANGELOG.read_text()
    assert "[Keep a Changelog](https://keepachangelog.com/" in text
    versions = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", text, re.M)
    assert versions[0] == ("Unreleased", "")
    assert (oomguard.__version__, versions[1][1]) == versions[1] and versions[1][1]
    for version, _ in versions:
        assert re.search(rf"^\[{re.escape(version)}\]: https://", text, re.M)
    notes = subprocess.run(
        ["bash", str(REPO / "scripts" / "changelog-notes"), oomguard.__version__],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert "### Added" in notes


def test_upgrade_notes_say_how_to_upgrade_the_crds() -> None:
    text = CHANGELOG.read_text()
    assert "CRDs are not upgraded by Helm" in text
    assert "kubectl apply --server-side -f /tmp/oomguard-chart/oomguard/crds/" in text
    assert (REPO / "helm" / "oomguard" / "crds").is_dir()  # what `helm pull --untar` unpacks


def test_version_command_the_docs_show_runs() -> None:
    documented = [d for d in DOCS if "oomguard --version" in d.read_text()]
    assert README in documented
    result = subprocess.run(
        [sys.executable, "-m", "oomguard", "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert [line.split()[0] for line in result.stdout.splitlines()] == [
        "oomguard",
        "commit",
        "kernel",
        "cgroup",
    ]


def _sizing_rows() -> list[list[str]]:
    text = (REPO / "docs" / "sizing.md").read_text()
    table = text.split("## Worked examples", 1)[1]
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in table.splitlines()
        if re.match(r"^\| \d", line)
    ]


def test_sizing_examples_are_what_the_agent_computes() -> None:
    rows = _sizing_rows()
    assert len(rows) == 4
    for node, reserved, eviction_hard, kube_max, allocatable, default, suggested in rows:
        total = int(node.split()[0]) * MI
        kube_reserved, system_reserved = (int(x) * MI for x in reserved.split(" + "))
        hard = int(eviction_hard) * MI
        memory_max = total - kube_reserved - system_reserved
        assert int(kube_max) == memory_max // MI
        assert int(allocatable) == (memory_max - hard) // MI
        for cell, reserve in (
            (default, default_reserve_bytes(total)),
            (suggested, kube_reserved + system_reserved + hard),
        ):
            high = kubepods_high(total, reserve, memory_max)
            shown_reserve, shown_high = re.match(r"(\d+) → (\d+)", cell).groups()  # type: ignore[union-attr]
            assert int(shown_reserve) == round(reserve / MI), cell
            assert int(shown_high) == round(high.bytes / MI), cell
            assert ("capped" in cell) == high.capped_by_max, cell
