"""The files that restate the monitor registry, regenerated from it: both CRDs' and the
chart's values schema's ``monitor`` and the table of monitors in docs/node-agent.md.

``regenerate`` is pure (texts in, texts out); ``main`` is ``scripts/generate-monitor-schema``,
which writes them or, with ``--check``, names those out of date.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from oomguard.monitor.triggers import monitor_table
from oomguard.monitor.triggers.monitor_registry import MONITOR_KINDS, Kinds
from oomguard.wire import monitor_schema

COMMAND = "scripts/generate-monitor-schema"
POLICY_CRD = "helm/oomguard/crds/memoryreservepolicies.oomguard.io.yaml"
RESERVE_CRD = "helm/oomguard/crds/nodememoryreserves.oomguard.io.yaml"
VALUES_SCHEMA = "helm/oomguard/values.schema.json"
DOCS = "docs/node-agent.md"
FILES = (POLICY_CRD, RESERVE_CRD, VALUES_SCHEMA, DOCS)


def regenerate(texts: Mapping[str, str], kinds: Kinds = MONITOR_KINDS) -> dict[str, str]:
    """Each file of ``FILES`` (by path from the repository root) as the registry writes it."""
    sections = tuple(kind.section for kind in kinds)
    return {
        POLICY_CRD: monitor_schema.crd_with_monitor(
            texts[POLICY_CRD], monitor_schema.policy_crd_monitor(sections), POLICY_CRD
        ),
        RESERVE_CRD: monitor_schema.crd_with_monitor(
            texts[RESERVE_CRD], monitor_schema.reserve_crd_monitor(sections), RESERVE_CRD
        ),
        VALUES_SCHEMA: monitor_schema.values_schema_with_monitor(texts[VALUES_SCHEMA], sections),
        DOCS: monitor_schema.replace_block(
            texts[DOCS],
            monitor_table.monitor_table(kinds),
            DOCS,
            monitor_table.BEGIN,
            monitor_table.END,
        ),
    }


def stale(root: Path) -> list[str]:
    """The files under ``root`` that differ from what the registry writes."""
    texts = {path: (root / path).read_text() for path in FILES}
    return [path for path, text in regenerate(texts).items() if text != texts[path]]


def main(argv: Sequence[str]) -> int:
    root = Path.cwd()
    out_of_date = stale(root)
    if "--check" in argv:
        for path in out_of_date:
            print(f"{path}: out of date with the monitor registry; run {COMMAND}")
        return 1 if out_of_date else 0
    texts = {path: (root / path).read_text() for path in FILES}
    for path, text in regenerate(texts).items():
        if text != texts[path]:
            (root / path).write_text(text)
            print(f"{path}: rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
