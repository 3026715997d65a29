"""The chart README's values reference is generated from values.yaml by helm-docs (built from
its Go module by tests/tools/build), and is current: a value added without regenerating it, or
without a `# --` description, fails here."""

from __future__ import annotations

import re
import subprocess

import pytest
from chart_tools import CHART_DIR, REPO

pytestmark = pytest.mark.helm

HELM_DOCS = REPO / "tests" / "tools" / "cache" / "bin" / "helm-docs"
REGENERATE = "bash tests/tools/build && tests/tools/cache/bin/helm-docs --chart-search-root helm"


def _generated() -> str:
    assert HELM_DOCS.exists(), f"{HELM_DOCS} missing: run tests/tools/build"
    result = subprocess.run(
        [str(HELM_DOCS), "--chart-search-root", "helm", "--dry-run", "--log-level", "error"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_readme_is_what_helm_docs_generates() -> None:
    readme = (CHART_DIR / "README.md").read_text()
    assert _generated().strip() == readme.strip(), f"the chart README is stale: {REGENERATE}"


def test_every_value_has_a_description() -> None:
    rows = [
        line
        for line in (CHART_DIR / "README.md").read_text().splitlines()
        if re.match(r"^\| [a-zA-Z][\w.\"/-]* \| (string|bool|int|float|object|list) \|", line)
    ]
    assert len(rows) > 80
    undocumented = [row.split(" | ")[0][2:] for row in rows if row.rstrip().endswith("|  |")]
    assert undocumented == []
