"""The licence the package, the image and the repository declare is one licence, shipped in full."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_license_file_is_the_full_apache_2_text() -> None:
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text.splitlines()[1]
    assert "Version 2.0, January 2004" in text
    # The full text ends with the appendix on how to apply it; a stub would stop earlier.
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert "APPENDIX: How to apply the Apache License to your work." in text


def test_package_and_image_declare_apache_2() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    label = re.search(
        r'org\.opencontainers\.image\.licenses="([^"]+)"', (REPO / "Dockerfile").read_text()
    )
    assert label is not None and label.group(1) == "Apache-2.0"
