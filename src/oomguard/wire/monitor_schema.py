"""The ``monitor`` schema of both CRDs and of the chart's values schema, derived from the
registered sections (``MONITOR_SECTIONS``) so no fact about a section is written twice (pure).

``scripts/generate-monitor-schema`` writes these into the files between their markers;
``tests/wire/test_monitor_sections.py`` fails while a file holds something else.
"""

from __future__ import annotations

import json
from typing import Any

from oomguard.wire.monitor_settings import MONITOR_SECTIONS, Sections, spoken_list
from oomguard.wire.spec_section import FieldType, MonitorSection, SpecField

DESCRIPTION = "How the node agent notices trouble; fields left out keep the built-in defaults."
BEGIN = "# generated from the monitor registry by scripts/generate-monitor-schema"
END = "# end of the generated monitor schema"


def _literal(f: SpecField, bound: int) -> str:
    """A bound as CEL compares it with the field: a double for a number."""
    return f"{float(bound)}" if f.type is FieldType.NUMBER else str(bound)


def range_rule(section: MonitorSection[Any], f: SpecField) -> dict[str, str] | None:
    """The policy CRD's CEL rule for ``f``'s range, its message naming the field."""
    name = f"monitor.{section.key}.{f.spec}"
    low, high = f.minimum, f.maximum
    if low is not None and high is not None:
        rule = f"self >= {_literal(f, low)} && self <= {_literal(f, high)}"
        message = f"{name} must be between {low} and {high}{f.why}"
    elif low == 1 and f.type is FieldType.INTEGER:
        rule, message = "self > 0", f"{name} must be positive{f.why}"
    elif low is not None:
        rule, message = f"self >= {_literal(f, low)}", f"{name} must be at least {low}{f.why}"
    elif high is not None:
        rule, message = f"self <= {_literal(f, high)}", f"{name} must be at most {high}{f.why}"
    else:
        return None
    return {"rule": rule, "message": message}


def at_least_one_rule(sections: Sections) -> dict[str, str]:
    """The policy CRD's copy of "at least one monitor that stands alone stays enabled": a
    section left out keeps its default, so only an explicit ``enabled`` counts."""
    alone = [s for s in sections if s.stands_alone]
    off = []
    for s in alone:
        said = f"has(self.{s.key}) && has(self.{s.key}.enabled)"
        if s.default().enabled:  # off only when it says so
            off.append(f"{said} && !self.{s.key}.enabled")
        else:  # off unless it says it is on
            off.append(f"!({said} && self.{s.key}.enabled)")
    return {
        "rule": f"!({' && '.join(off)})",
        "message": f"monitor: at least one of {spoken_list([s.key for s in alone])} "
        "must stay enabled",
    }


def policy_crd_monitor(sections: Sections = MONITOR_SECTIONS) -> dict[str, Any]:
    """MemoryReservePolicy ``spec.monitor``: every field optional, ranges as CEL rules."""
    properties: dict[str, Any] = {}
    for s in sections:
        fields: dict[str, Any] = {}
        for f in s.settings.FIELDS:
            rule = range_rule(s, f)
            fields[f.spec] = {"type": f.type.value} | (
                {"x-kubernetes-validations": [rule]} if rule else {}
            )
        node: dict[str, Any] = {"type": "object", "description": s.description}
        node["properties"] = fields
        if s.rules:
            node["x-kubernetes-validations"] = [
                {"rule": r.rule, "message": r.message} for r in s.rules
            ]
        properties[s.key] = node
    monitor: dict[str, Any] = {"type": "object", "description": DESCRIPTION}
    monitor["properties"] = properties
    if any(s.stands_alone for s in sections):
        monitor["x-kubernetes-validations"] = [at_least_one_rule(sections)]
    return monitor


def reserve_crd_monitor(sections: Sections = MONITOR_SECTIONS) -> dict[str, Any]:
    """NodeMemoryReserve ``spec.monitor``: the operator writes every field of every section
    but the optional ones (absent: defaults); ranges as plain bounds."""
    properties: dict[str, Any] = {}
    for s in sections:
        fields = {f.spec: {"type": f.type.value} | _bounds(f) for f in s.settings.FIELDS}
        properties[s.key] = {
            "type": "object",
            "description": s.description,
            "required": [f.spec for f in s.settings.FIELDS],
            "properties": fields,
        }
    return {
        "type": "object",
        "required": [s.key for s in sections if not s.optional],
        "properties": properties,
    }


def values_schema_monitor(sections: Sections = MONITOR_SECTIONS) -> dict[str, Any]:
    """The chart's ``defaultPolicy.monitor``: closed objects, ranges as plain bounds."""
    properties = {
        s.key: {
            "type": "object",
            "additionalProperties": False,
            "properties": {f.spec: {"type": f.type.value} | _bounds(f) for f in s.settings.FIELDS},
        }
        for s in sections
    }
    return {
        "type": "object",
        "description": DESCRIPTION,
        "additionalProperties": False,
        "properties": properties,
    }


def _bounds(f: SpecField) -> dict[str, int]:
    return ({"minimum": f.minimum} if f.minimum is not None else {}) | (
        {"maximum": f.maximum} if f.maximum is not None else {}
    )


def yaml_lines(key: str, node: Any, indent: int) -> list[str]:
    """``key: node`` in the CRDs' hand-written style: block mappings, lists of strings in
    flow style, lists of mappings as block sequences, strings double-quoted."""
    pad = " " * indent
    if isinstance(node, dict):
        lines = [f"{pad}{key}:"]
        for k, v in node.items():
            lines += yaml_lines(k, v, indent + 2)
        return lines
    if isinstance(node, list) and all(isinstance(item, dict) for item in node):
        lines = [f"{pad}{key}:"]
        for item in node:
            entries = [line for k, v in item.items() for line in yaml_lines(k, v, indent + 4)]
            first, *rest = [line[indent + 4 :] for line in entries]
            lines += [f"{pad}  - {first}", *[f"{pad}    {line}" for line in rest]]
        return lines
    if isinstance(node, list):
        return [f"{pad}{key}: [{', '.join(node)}]"]
    return [f"{pad}{key}: {_scalar(key, node)}"]


def _scalar(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if key == "type":
        return str(value)
    return json.dumps(value)


def replace_block(
    text: str, lines: list[str], where: str, begin: str = BEGIN, end: str = END
) -> str:
    """``text`` with the lines between its ``begin`` and ``end`` marker lines replaced."""
    all_lines = text.split("\n")
    starts = [i for i, line in enumerate(all_lines) if line.strip() == begin]
    ends = [i for i, line in enumerate(all_lines) if line.strip() == end]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise ValueError(f"{where}: expected one {begin!r} line and one {end!r} line after it")
    return "\n".join([*all_lines[: starts[0] + 1], *lines, *all_lines[ends[0] :]])


def marker_indent(text: str, where: str) -> int:
    """How deep the generated block sits: the indentation of its ``BEGIN`` marker."""
    for line in text.split("\n"):
        if line.strip() == BEGIN:
            return len(line) - len(line.lstrip())
    raise ValueError(f"{where}: no {BEGIN!r} line")


def crd_with_monitor(text: str, monitor: dict[str, Any], where: str) -> str:
    """A CRD's text with its generated ``monitor`` block rewritten."""
    lines = yaml_lines("monitor", monitor, marker_indent(text, where))
    return replace_block(text, lines, where)


def values_schema_with_monitor(text: str, sections: Sections = MONITOR_SECTIONS) -> str:
    """values.schema.json with ``defaultPolicy.monitor`` rewritten (JSON has no comments to
    mark a block: the file is written back whole, as it is formatted)."""
    schema = json.loads(text)
    schema["properties"]["defaultPolicy"]["properties"]["monitor"] = values_schema_monitor(sections)
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
