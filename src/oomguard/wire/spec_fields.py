"""Reading one field of a spec: the type and range checks every settings section shares, and
the error that names the field and what is allowed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class SettingsError(ValueError):
    """A spec the agent cannot enforce; the message names the field and what is allowed."""


def require(condition: bool, path: str, message: str) -> None:
    if not condition:
        raise SettingsError(f"{path}: {message}")


def between(value: float, low: int, high: int, path: str, why: str = "") -> None:
    require(low <= value <= high, path, f"must be between {low} and {high}{why}, got {value}")


def not_negative(value: int, path: str) -> None:
    require(value >= 0, path, f"must not be negative, got {value}")


def mapping_at(value: object, path: str) -> Mapping[str, Any]:
    require(isinstance(value, Mapping), path, f"expected an object, got {value!r}")
    assert isinstance(value, Mapping)
    return value


def section(spec: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    """An optional sub-object (absent: empty, so every field keeps its base value)."""
    return mapping_at(spec.get(key, {}), f"{path}.{key}")


def bool_field(spec: Mapping[str, Any], key: str, default: bool, path: str) -> bool:
    value = spec.get(key, default)
    require(isinstance(value, bool), f"{path}.{key}", f"expected true or false, got {value!r}")
    return bool(value)


def int_field(spec: Mapping[str, Any], key: str, default: int, path: str) -> int:
    value = spec.get(key, default)
    require(
        isinstance(value, int) and not isinstance(value, bool),
        f"{path}.{key}",
        f"expected an integer, got {value!r}",
    )
    return int(value)


def number_field(spec: Mapping[str, Any], key: str, default: float, path: str) -> float:
    value = spec.get(key, default)
    require(
        isinstance(value, int | float) and not isinstance(value, bool),
        f"{path}.{key}",
        f"expected a number, got {value!r}",
    )
    return float(value)
