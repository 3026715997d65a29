"""The size bounds a newcomer relies on: no module in the package over about 350 lines and no
class over about 200, so each reads in one sitting. A unit that grows past them is split by
job (see ``docs/architecture.md``), not allowed a larger bound here."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOTS = [REPO / "monitor", REPO / "operator", REPO / "src" / "oomguard" / "wire"]
MODULE_LINES = 360  # "about 350"
CLASS_LINES = 210  # "about 200"


def sources() -> list[Path]:
    return sorted(p for root in ROOTS for p in root.rglob("*.py"))


def class_sizes(tree: ast.Module) -> dict[str, int]:
    return {
        node.name: (node.end_lineno or node.lineno) - node.lineno + 1
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
    }


def test_the_package_has_sources() -> None:
    """Guards the two tests below against passing on an empty walk."""
    assert len(sources()) > 100


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_module_is_over_the_line_bound(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MODULE_LINES, f"{path.relative_to(REPO)}: {lines} lines"


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_class_is_over_the_line_bound(path: Path) -> None:
    tree = ast.parse(path.read_text())
    over = {name: n for name, n in class_sizes(tree).items() if n > CLASS_LINES}
    assert not over, f"{path.relative_to(REPO)}: {over}"
