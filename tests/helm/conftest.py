"""Fixtures for the chart tests: an isolated helm home and renders cached per values file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from chart_tools import VALUES_FILES, render


@pytest.fixture(scope="session")
def helm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm-home")


@pytest.fixture(scope="session")
def rendered(helm_home: Path) -> dict[str, list[dict[str, Any]]]:
    """`helm template --include-crds` of every values file in tests/helm/values, by stem."""
    return {f.stem: render(helm_home, [f]) for f in VALUES_FILES}
