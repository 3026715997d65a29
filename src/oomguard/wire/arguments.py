"""Command-line value types both the agent's and the operator's subcommands use.

Each one turns the text into its value when the arguments are parsed, so a bad value fails
there, naming the flag (``argument --reserve: ...``), with the same words on every
subcommand, before anything starts.
"""

from __future__ import annotations

import argparse
import math

from oomguard.wire.sizes import SizeError, parse_size

MAX_PORT = 65535


def size(text: str) -> int:
    """A memory size in bytes: ``512Mi``, ``2G``, plain bytes (see ``sizes``)."""
    try:
        return parse_size(text)
    except SizeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def seconds(text: str) -> float:
    """A duration of zero or more seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0 or math.isnan(value) or math.isinf(value):
        raise argparse.ArgumentTypeError(f"seconds must be >= 0: {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """A duration above zero (a period or a timeout)."""
    value = seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"seconds must be > 0: {text!r}")
    return value


def port(text: str) -> int:
    """A TCP port, 0 for "off" (or "any", where the command says so)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"port must be 0-{MAX_PORT}: {text!r}")
    return value


def positive_int(text: str) -> int:
    """A count of at least one."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value
