"""Every `oomguard ...` command line in the docs' code blocks is one the CLI accepts: the
flags exist and their values parse (running them needs a guarded host or a cluster; the
real-kernel and real-node tiers run the commands themselves)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from oomguard.cli import COMMANDS, build_parser

REPO = Path(__file__).resolve().parents[2]
DOCS = [
    REPO / "README.md",
    *sorted((REPO / "docs").rglob("*.md")),
    REPO / "helm" / "oomguard" / "README.md",
]
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
COMMAND = re.compile(rf"^(?:sudo )?oomguard (?:{'|'.join(COMMANDS)})\b")


def documented_commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for block in FENCE.findall(doc.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.strip()
                if COMMAND.match(line):
                    found.append((str(doc.relative_to(REPO)), line))
    return found


COMMANDS_IN_DOCS = documented_commands()


def test_the_docs_show_commands() -> None:
    assert len(COMMANDS_IN_DOCS) >= 3


@pytest.mark.parametrize(
    ("doc", "line"), COMMANDS_IN_DOCS, ids=[f"{d}: {c}" for d, c in COMMANDS_IN_DOCS]
)
def test_documented_command_parses(doc: str, line: str) -> None:
    argv = shlex.split(line, comments=True)
    argv = argv[argv.index("oomguard") + 1 :]
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        raise AssertionError(f"{doc}: the CLI refuses {line!r}") from exc
