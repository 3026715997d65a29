"""Kubernetes label selectors (matchLabels + matchExpressions), matched against node labels.

Same semantics as the apiserver: all requirements must hold; an empty selector selects
everything; ``NotIn`` and ``DoesNotExist`` hold for nodes without the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any


class SelectorError(ValueError):
    """A selector the apiserver schema should have refused; the message says which part."""


class Operator(Enum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator is Operator.IN:
            return labels.get(self.key) in self.values
        if self.operator is Operator.NOT_IN:
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator is Operator.EXISTS:
            return self.key in labels
        return self.key not in labels


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(requirement.matches(labels) for requirement in self.requirements)

    @property
    def keys(self) -> frozenset[str]:
        """The label keys this selector reads: labels under other keys never change a match."""
        return frozenset(requirement.key for requirement in self.requirements)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None, path: str = "nodeSelector") -> LabelSelector:
        if spec is None:
            return cls()
        if not isinstance(spec, Mapping):
            raise SelectorError(f"{path}: expected an object, got {spec!r}")
        requirements: list[Requirement] = []
        match_labels = spec.get("matchLabels")
        if match_labels is None:
            match_labels = {}
        if not isinstance(match_labels, Mapping):
            raise SelectorError(f"{path}.matchLabels: expected an object, got {match_labels!r}")
        for key, value in sorted(match_labels.items()):
            if not isinstance(value, str):
                raise SelectorError(f"{path}.matchLabels.{key}: expected a string, got {value!r}")
            requirements.append(Requirement(key, Operator.IN, frozenset([value])))
        expressions = spec.get("matchExpressions")
        if expressions is None:
            expressions = []
        if not isinstance(expressions, list):
            raise SelectorError(f"{path}.matchExpressions: expected a list, got {expressions!r}")
        for index, expression in enumerate(expressions):
            requirements.append(_requirement(expression, f"{path}.matchExpressions[{index}]"))
        return cls(tuple(requirements))


def _requirement(expression: object, path: str) -> Requirement:
    if not isinstance(expression, Mapping):
        raise SelectorError(f"{path}: expected an object, got {expression!r}")
    key = expression.get("key")
    if not isinstance(key, str) or not key:
        raise SelectorError(f"{path}.key: expected a label key, got {key!r}")
    try:
        operator = Operator(expression.get("operator"))
    except ValueError:
        allowed = ", ".join(op.value for op in Operator)
        raise SelectorError(
            f"{path}.operator: expected one of {allowed}, got {expression.get('operator')!r}"
        ) from None
    values = expression.get("values") or []
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise SelectorError(f"{path}.values: expected a list of strings, got {values!r}")
    if operator in (Operator.IN, Operator.NOT_IN) and not values:
        raise SelectorError(f"{path}: {operator.value} needs at least one value")
    if operator in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and values:
        raise SelectorError(f"{path}: {operator.value} takes no values")
    return Requirement(key, operator, frozenset(values))
