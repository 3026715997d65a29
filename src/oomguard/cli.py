"""The `oomguard` command: one entry point, one module per subcommand.

Each subcommand module exposes ``configure(parser)`` and ``run(args) -> int``.
Only what a node or a cluster runs is a subcommand: the demo, which boots a VM, is
developer tooling that ``scripts/demo`` starts as its own module.

Logging is the process's, so it is set up here, once, for every long-running command
(``--log-level``, ``--log-format``) before the command runs. An unknown flag is reported
as unknown by the subcommand it was given to, even when a required flag is missing too.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from oomguard.monitor.feedback.logs import (
    LOG_FORMATS,
    LOG_LEVELS,
    LogFormat,
    LogLevel,
    setup_logging,
)

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


# the commands that run until stopped, and log while they do
LONG_RUNNING = frozenset({"monitor", "guard", "operator"})
REQUIRED_MISSING = "the following arguments are required"


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser that names unknown flags before missing required ones: argparse
    checks the required ones first, so ``guard --bogus`` would complain about a missing
    ``--memory-high`` and never mention ``--bogus``."""

    _seen: list[str] | None = None

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._seen = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        if message.startswith(REQUIRED_MISSING) and self._seen is not None:
            unknown = self._unknown(self._seen)
            if unknown:
                message = f"unrecognized arguments: {' '.join(unknown)}"
        super().error(message)

    def _unknown(self, seen: list[str]) -> list[str]:
        required = [a for a in self._actions if a.required]
        for action in required:
            action.required = False
        try:
            _, extras = super().parse_known_args(seen, argparse.Namespace())
        finally:
            for action in required:
                action.required = True
        return [e for e in extras if e.startswith("-")]

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = self._command_parser(parsed)
            (command or self).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def _command_parser(self, parsed: argparse.Namespace) -> argparse.ArgumentParser | None:
        name = getattr(parsed, "_command", None)  # not .command: guard's own positional
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction) and name in action.choices:
                chosen = action.choices[name]
                return chosen if isinstance(chosen, argparse.ArgumentParser) else None
        return None


def add_logging_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("logging")
    group.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default=LogLevel.INFO.value,
        metavar="LEVEL",
        help="lowest level logged, for oomguard and the libraries it uses alike: "
        "debug, info, warning or error (default: info)",
    )
    group.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=LogFormat.TEXT.value,
        metavar="FORMAT",
        help="text (one line per event, key=value fields) or json (one object per line, "
        "for log collectors); kopf, kubernetes and urllib3 lines too (default: text)",
    )


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
    parser = CommandParser(
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
        sub.set_defaults(_module=module_name, _command=name)
        if name in LONG_RUNNING:  # first: an alias such as the operator's --verbose shares it
            add_logging_options(sub)
        importlib.import_module(module_name).configure(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    if args._command in LONG_RUNNING:
        setup_logging(LogFormat(args.log_format), level=LogLevel(args.log_level))
    module = importlib.import_module(args._module)
    result: int = module.run(args)
    return result
