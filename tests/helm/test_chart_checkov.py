"""Static security scan of the rendered manifests with checkov.

Every values file in tests/helm/values is rendered and scanned with checkov's Kubernetes
checks. A finding must be fixed in the chart, or listed in tests/helm/checkov-skips.yaml with
the reason it is accepted. A skip that no longer matches any finding fails too, so the list
never hides more than it has to.

checkov lives in its own virtualenv (its pinned dependencies would downgrade the project's):
OOMGUARD_CHECKOV, or .cache/checkov/bin/checkov by default (see the chart README for setup).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_tools import REPO, VALUES_FILES, render

pytestmark = pytest.mark.helm

SKIPS_FILE = Path(__file__).resolve().parent / "checkov-skips.yaml"
CHECKOV = Path(os.environ.get("OOMGUARD_CHECKOV", REPO / ".cache" / "checkov" / "bin" / "checkov"))


def _skips() -> list[dict[str, Any]]:
    doc = yaml.safe_load(SKIPS_FILE.read_text())
    skips: list[dict[str, Any]] = doc["skips"]
    return skips


def _applies(skip: dict[str, Any], finding: dict[str, Any]) -> bool:
    kind, name = _where(finding)
    rendered_from = Path(finding["file_path"]).stem
    return (
        skip["id"] == finding["check_id"]
        and kind in skip["kinds"]
        and any(part in name for part in skip.get("names", [""]))
        and rendered_from in skip.get("values", [rendered_from])
    )


def test_every_skip_has_a_reason() -> None:
    for skip in _skips():
        assert set(skip) <= {"id", "kinds", "names", "values", "reason"}, skip
        stems = {p.stem for p in VALUES_FILES}
        assert set(skip.get("values", [])) <= stems, skip
        assert skip["id"].startswith("CKV"), skip
        assert skip["kinds"], skip
        assert len(skip["reason"].split()) >= 8, f"{skip['id']}: say why it is accepted"


@pytest.fixture(scope="module")
def findings(helm_home: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    assert CHECKOV.exists(), (
        f"checkov not found at {CHECKOV}: python3 -m venv .cache/checkov && "
        ".cache/checkov/bin/pip install checkov (or set OOMGUARD_CHECKOV)"
    )
    out_dir = tmp_path_factory.mktemp("rendered")
    for values in VALUES_FILES:
        objects = [
            o for o in render(helm_home, [values]) if o["kind"] != "CustomResourceDefinition"
        ]
        (out_dir / f"{values.stem}.yaml").write_text(yaml.safe_dump_all(objects))
    result = subprocess.run(
        [
            str(CHECKOV),
            "--directory",
            str(out_dir),
            "--framework",
            "kubernetes",
            "--output",
            "json",
            "--compact",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )
    assert result.returncode in (0, 1), result.stderr[-3000:]
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed: list[dict[str, Any]] = []
    passed = 0
    for r in reports:
        failed += r["results"]["failed_checks"]
        passed += len(r["results"]["passed_checks"])
    assert passed > 100, "checkov ran no real checks"
    return failed


def _where(finding: dict[str, Any]) -> tuple[str, str]:
    """(kind, name) from checkov's resource id: 'DaemonSet.<namespace>.<name>[.labels...]'."""
    parts = finding["resource"].split(".")
    return parts[0], parts[2] if len(parts) > 2 else parts[-1]


def test_no_unjustified_findings(findings: list[dict[str, Any]]) -> None:
    skips = _skips()
    unjustified = sorted(
        {
            f"{f['check_id']} {f['check_name']} on {f['resource']}"
            for f in findings
            if not any(_applies(s, f) for s in skips)
        }
    )
    assert unjustified == [], "fix these in the chart or justify them:\n" + "\n".join(unjustified)


def test_every_skip_is_still_needed(findings: list[dict[str, Any]]) -> None:
    stale = [s["id"] for s in _skips() if not any(_applies(s, f) for f in findings)]
    assert stale == [], f"skips that match no finding any more (remove them): {stale}"
