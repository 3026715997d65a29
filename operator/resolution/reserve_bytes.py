"""How many bytes a policy reserves on a node: an absolute quantity, or a percentage of the
node's memory clamped to optional min and max bounds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from oomguard.wire.sizes import SizeError, parse_size


class ReserveError(ValueError):
    """A reserve rule the apiserver schema should have refused; the message names the field."""


def parse_quantity(value: object, path: str) -> int:
    """Bytes for a Kubernetes quantity written as a string (``2Gi``) or a plain integer."""
    if isinstance(value, bool):
        raise ReserveError(f"{path}: expected a memory quantity, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ReserveError(f"{path}: must not be negative, got {value}")
        return value
    if not isinstance(value, str):
        raise ReserveError(f"{path}: expected a memory quantity, got {value!r}")
    try:
        return parse_size(value)
    except SizeError as exc:
        raise ReserveError(f"{path}: {exc}") from None


@dataclass(frozen=True)
class AbsoluteReserve:
    bytes: int

    def bytes_for(self, node_memory_bytes: int | None) -> int:
        return self.bytes

    @property
    def needs_node_memory(self) -> bool:
        return False


@dataclass(frozen=True)
class PercentReserve:
    percent: Decimal
    min_bytes: int | None = None
    max_bytes: int | None = None

    def __post_init__(self) -> None:
        if not Decimal(0) < self.percent < Decimal(100):
            raise ReserveError(
                f"reserve.percent: must be greater than 0 and less than 100, got {self.percent}"
            )
        if (
            self.min_bytes is not None
            and self.max_bytes is not None
            and self.min_bytes > self.max_bytes
        ):
            raise ReserveError(
                f"reserve: min must not exceed max ({self.min_bytes} > {self.max_bytes} bytes)"
            )

    @property
    def needs_node_memory(self) -> bool:
        return True

    def bytes_for(self, node_memory_bytes: int | None) -> int:
        """Rounded down to whole bytes, then clamped; None memory is the caller's bug."""
        if node_memory_bytes is None:
            raise ReserveError("a percent reserve needs the node's memory capacity")
        share = int(Decimal(node_memory_bytes) * self.percent / Decimal(100))
        if self.min_bytes is not None:
            share = max(share, self.min_bytes)
        if self.max_bytes is not None:
            share = min(share, self.max_bytes)
        return share


ReserveRule = AbsoluteReserve | PercentReserve


def reserve_rule_from_spec(spec: Mapping[str, Any], path: str = "reserve") -> ReserveRule:
    if not isinstance(spec, Mapping):
        raise ReserveError(f"{path}: expected an object, got {spec!r}")
    has_absolute = "absolute" in spec
    has_percent = "percent" in spec
    if has_absolute == has_percent:
        raise ReserveError(f"{path}: set exactly one of absolute or percent")
    if has_absolute:
        if "min" in spec or "max" in spec:
            raise ReserveError(
                f"{path}: min and max bound a percent reserve; set percent or remove them"
            )
        absolute = parse_quantity(spec["absolute"], f"{path}.absolute")
        if absolute <= 0:
            raise ReserveError(f"{path}.absolute: must be a positive memory quantity")
        return AbsoluteReserve(absolute)
    percent = spec["percent"]
    if isinstance(percent, bool) or not isinstance(percent, int | float):
        raise ReserveError(f"{path}.percent: expected a number, got {percent!r}")
    return PercentReserve(
        percent=Decimal(str(percent)),
        min_bytes=parse_quantity(spec["min"], f"{path}.min") if "min" in spec else None,
        max_bytes=parse_quantity(spec["max"], f"{path}.max") if "max" in spec else None,
    )
