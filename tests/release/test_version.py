"""One version: the package's, the chart's version and appVersion, and the image tag agree."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import yaml

import oomguard

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "oomguard"


def test_pyproject_takes_the_version_from_the_package() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    dynamic = pyproject["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "oomguard.__version__"}


def test_installed_metadata_matches_the_package() -> None:
    # The editable install's metadata was built from __version__; a stale .venv shows here.
    assert version("oomguard") == oomguard.__version__


def test_chart_version_and_app_version_are_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == oomguard.__version__
    assert chart["version"] == oomguard.__version__


def test_image_tag_defaults_to_the_app_version() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["tag"] == ""  # empty: the template falls back to appVersion
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    assert re.search(r"default \.Chart\.AppVersion \.Values\.image\.tag", helpers)


def test_version_is_pep440_and_semver() -> None:
    # PyPI needs PEP 440, helm needs SemVer 2; plain X.Y.Z is both.
    assert re.fullmatch(r"\d+\.\d+\.\d+", oomguard.__version__)
