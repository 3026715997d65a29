"""scripts/changelog-notes: the release's notes are exactly its version's CHANGELOG section."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "changelog-notes"

CHANGELOG = """\
# Changelog

## [Unreleased]

## [1.10.0] - 2026-02-01

### Fixed
- ten

## [1.1.0] - 2026-01-01

### Added
- one

[1.10.0]: https://example.invalid/v1.10.0
[1.1.0]: https://example.invalid/v1.1.0
"""


def notes(version: str, changelog: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), version, str(changelog)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_prints_only_that_versions_section(tmp_path: Path) -> None:
    changelog = tmp_path / "CHANGELOG.md"
    changelog.write_text(CHANGELOG)
    result = notes("1.1.0", changelog)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "### Added\n- one\n"  # no 1.10.0, no link definitions
    assert notes("1.10.0", changelog).stdout == "### Fixed\n- ten\n"


def test_fails_for_a_version_without_notes(tmp_path: Path) -> None:
    changelog = tmp_path / "CHANGELOG.md"
    changelog.write_text(CHANGELOG)
    for version in ("2.0.0", "Unreleased"):
        result = notes(version, changelog)
        assert result.returncode == 1
        assert "has no notes" in result.stderr
