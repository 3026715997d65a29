"""The `oomguard` command: one entry point, one module per subcommand.

Each subcommand module exposes ``configure(parser)`` and ``run(args) -> int``.
Only what a node or a cluster runs is a subcommand: the demo, which boots a VM, is
developer tooling that ``scripts/demo`` starts as its own module.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "monitor": (
        "oomguard.monitor.modes.node_command",
        "Run the node agent: guard kubepods and evict pods newest first before the OOM killer.",
    ),
    "status": (
        "oomguard.monitor.modes.status_command",
        "Show what the node agent guards, its counters and the current eviction order.",
    ),
    "guard": (
        "oomguard.monitor.modes.guard_command",
        "Run a command (or watch a cgroup) and stop its newest processes before the OOM killer.",
    ),
    "operator": (
        "oomguard.operator.operator_command",
        "Resolve MemoryReservePolicy objects into one NodeMemoryReserve per node (kopf).",
    ),
}


class _VersionAction(argparse.Action):
    """``--version``, computed only when asked: it reads the mount table and may run git."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> NoReturn:
        from oomguard.version_report import version_report

        print(version_report())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oomguard",
        description="Frees memory newest-first before the kernel OOM killer fires.",
    )
    parser.add_argument(
        "--version",
        action=_VersionAction,
        help="show the version, git commit, kernel release and cgroup mode (v1, hybrid, v2)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(_module=module_name)
        importlib.import_module(module_name).configure(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    module = importlib.import_module(args._module)
    result: int = module.run(args)
    return result
