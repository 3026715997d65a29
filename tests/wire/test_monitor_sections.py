"""Adding a monitor: its settings section is registered once (``MONITOR_SECTIONS``), and every
place that repeats it by hand is held to that registration here. Each test collects every
difference and fails naming the file, the path inside it and what the registration says, so
one run lists all the places a new monitor still has to reach.

The places: the MemoryReservePolicy CRD (fields, types, the CEL range rules), the
NodeMemoryReserve CRD (fields, types, required, ranges where it states them), the chart's
values schema (fields, types, ranges, closed objects), the monitor registry, the metrics
label and the docs that list the monitors.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from oomguard.monitor.feedback.metrics_registry import MonitorName
from oomguard.monitor.triggers.monitor_registry import MONITOR_KINDS
from oomguard.wire.monitor_settings import (
    MONITOR_SECTIONS,
    FieldType,
    MonitorSection,
    MonitorSettings,
    SpecField,
)

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "oomguard"
POLICY_CRD = CHART / "crds" / "memoryreservepolicies.oomguard.io.yaml"
RESERVE_CRD = CHART / "crds" / "nodememoryreserves.oomguard.io.yaml"
VALUES_SCHEMA = CHART / "values.schema.json"
KEYS = [s.key for s in MONITOR_SECTIONS]


def crd_monitor(path: Path) -> dict[str, Any]:
    crd = yaml.safe_load(path.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["storage"])
    monitor: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]["monitor"]
    return monitor


def values_monitor() -> dict[str, Any]:
    schema = json.loads(VALUES_SCHEMA.read_text())
    monitor: dict[str, Any] = schema["properties"]["defaultPolicy"]["properties"]["monitor"]
    return monitor


def cel_allows(rules: list[str], value: float) -> bool:
    """Whether range rules such as ``self >= 10 && self <= 60000`` let ``value`` through."""
    ops = {
        ">=": lambda a, b: a >= b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        "<": lambda a, b: a < b,
    }
    allowed = True
    for rule in rules:
        terms = [t.strip() for t in rule.split("&&")]
        for term in terms:
            match = re.fullmatch(r"self (>=|<=|>|<) (-?[0-9.]+)", term)
            assert match, f"not a range rule: {rule!r}"
            allowed = allowed and ops[match[1]](value, float(match[2]))
    return allowed


def range_problems(f: SpecField, rules: list[str]) -> list[str]:
    """What the CEL rules get wrong about ``f``'s range, checked at and just past each end."""
    step = 1 if f.type is FieldType.INTEGER else 0.001
    probes = []
    if f.minimum is not None:
        probes += [(f.minimum, True), (f.minimum - step, False)]
    if f.maximum is not None:
        probes += [(f.maximum, True), (f.maximum + step, False)]
    if not probes and rules:
        return [f"has range rules {rules}, the registration has no range"]
    return [
        f"{value} {'refused' if allowed else 'allowed'}, the registration says "
        f"[{f.minimum}, {f.maximum}]"
        for value, allowed in probes
        if cel_allows(rules, value) != allowed
    ]


def section_fields(section: MonitorSection) -> list[str]:
    return [f.spec for f in section.settings.FIELDS]


def values_fragment(section: MonitorSection) -> dict[str, Any]:
    """What values.schema.json holds for a section (all of it follows from the registration)."""
    fields: dict[str, Any] = {}
    for f in section.settings.FIELDS:
        fields[f.spec] = {"type": f.type.value}
        fields[f.spec] |= {"minimum": f.minimum} if f.minimum is not None else {}
        fields[f.spec] |= {"maximum": f.maximum} if f.maximum is not None else {}
    return {"type": "object", "additionalProperties": False, "properties": fields}


def policy_crd_fragment(section: MonitorSection) -> dict[str, Any]:
    """A starting point for the policy CRD: types and range rules, messages to finish by hand."""
    fields: dict[str, Any] = {}
    for f in section.settings.FIELDS:
        fields[f.spec] = {"type": f.type.value}
        terms = [f"self >= {f.minimum}"] if f.minimum is not None else []
        terms += [f"self <= {f.maximum}"] if f.maximum is not None else []
        if terms:
            message = f"monitor.{section.key}.{f.spec} must be in [{f.minimum}, {f.maximum}]"
            rule = {"rule": " && ".join(terms), "message": message}
            fields[f.spec]["x-kubernetes-validations"] = [rule]
    return {"type": "object", "properties": fields}


def reserve_crd_fragment(section: MonitorSection) -> dict[str, Any]:
    fields = {f.spec: {"type": f.type.value} for f in section.settings.FIELDS}
    return {"type": "object", "required": section_fields(section), "properties": fields}


def to_paste(problems: list[str], fragment: Any, as_json: bool = False) -> str:
    """The failure message: every difference, then how the file could state each section
    that has one (YAML for the CRDs, JSON for the values schema)."""
    missing = [s for s in MONITOR_SECTIONS if any(f".{s.key}:" in p for p in problems)]
    hints = [
        json.dumps({s.key: fragment(s)}, indent=2)
        if as_json
        else yaml.safe_dump({s.key: fragment(s)}, sort_keys=False)
        for s in missing
    ]
    return "\n".join([*problems, "", "registered sections, as the file could state them:", *hints])


def test_sections_are_monitor_settings_fields_and_round_trip() -> None:
    assert [s.attr for s, _ in MonitorSettings()] == [s.attr for s in MONITOR_SECTIONS]
    settings = MonitorSettings()
    for s in MONITOR_SECTIONS:
        assert isinstance(getattr(settings, s.attr), s.settings), s.key
    assert MonitorSettings.from_spec(settings.to_spec()) == settings


@pytest.mark.parametrize(
    ("section", "field"),
    [(s, f) for s in MONITOR_SECTIONS for f in s.settings.FIELDS],
    ids=lambda x: getattr(x, "key", getattr(x, "spec", "")),
)
def test_every_registered_field_is_read_and_written_by_the_codec(
    section: MonitorSection, field: SpecField
) -> None:
    default = getattr(getattr(MonitorSettings(), section.attr), field.attr)
    value = not default if field.type is FieldType.BOOLEAN else field.maximum or default + 1
    if field.spec == "stallMilliseconds":
        value = 1000  # at most windowMilliseconds (1000)
    read = MonitorSettings.from_spec({section.key: {field.spec: value}})
    assert getattr(getattr(read, section.attr), field.attr) == value
    assert read.to_spec()[section.key][field.spec] == value


def test_every_registered_monitor_has_a_section_and_a_metrics_label() -> None:
    assert [kind.name for kind in MONITOR_KINDS] == KEYS
    assert [name.value for name in MonitorName] == KEYS


def test_the_policy_crd_states_every_section() -> None:
    monitor = crd_monitor(POLICY_CRD)
    problems = []
    where = f"{POLICY_CRD.relative_to(REPO)} spec.monitor"
    if list(monitor["properties"]) != KEYS:
        problems.append(f"{where}: sections {list(monitor['properties'])}, registered {KEYS}")
    for s in MONITOR_SECTIONS:
        node = monitor["properties"].get(s.key, {})
        fields = node.get("properties", {})
        if list(fields) != section_fields(s):
            problems.append(
                f"{where}.{s.key}: fields {list(fields)}, registered {section_fields(s)}"
            )
        for f in s.settings.FIELDS:
            schema = fields.get(f.spec, {})
            path = f"{where}.{s.key}.{f.spec}"
            if schema.get("type") != f.type.value:
                problems.append(f"{path}: type {schema.get('type')}, registered {f.type.value}")
            checks = schema.get("x-kubernetes-validations", [])
            problems += [f"{path}: {p}" for p in range_problems(f, [c["rule"] for c in checks])]
            problems += [
                f"{path}: message {c['message']!r} does not name monitor.{s.key}.{f.spec}"
                for c in checks
                if not c["message"].startswith(f"monitor.{s.key}.{f.spec} ")
            ]
    assert problems == [], to_paste(problems, policy_crd_fragment)


def test_the_node_memory_reserve_crd_states_every_section() -> None:
    monitor = crd_monitor(RESERVE_CRD)
    problems = []
    where = f"{RESERVE_CRD.relative_to(REPO)} spec.monitor"
    required = [s.key for s in MONITOR_SECTIONS if not s.optional]
    if list(monitor["properties"]) != KEYS:
        problems.append(f"{where}: sections {list(monitor['properties'])}, registered {KEYS}")
    if monitor.get("required") != required:
        problems.append(f"{where}: required {monitor.get('required')}, registered {required}")
    for s in MONITOR_SECTIONS:
        node = monitor["properties"].get(s.key, {})
        fields = node.get("properties", {})
        if list(fields) != section_fields(s) or node.get("required") != section_fields(s):
            problems.append(
                f"{where}.{s.key}: fields {list(fields)} required {node.get('required')}, "
                f"registered {section_fields(s)} (the operator writes every field)"
            )
        for f in s.settings.FIELDS:
            schema = fields.get(f.spec, {})
            path = f"{where}.{s.key}.{f.spec}"
            if schema.get("type") != f.type.value:
                problems.append(f"{path}: type {schema.get('type')}, registered {f.type.value}")
            for bound in ("minimum", "maximum"):  # the agent's own copy: ranges where stated
                if bound in schema and schema[bound] != getattr(f, bound):
                    problems.append(
                        f"{path}: {bound} {schema[bound]}, registered {getattr(f, bound)}"
                    )
    assert problems == [], to_paste(problems, reserve_crd_fragment)


def test_the_values_schema_states_every_section() -> None:
    monitor = values_monitor()
    problems = []
    where = f"{VALUES_SCHEMA.relative_to(REPO)} defaultPolicy.monitor"
    if list(monitor["properties"]) != KEYS:
        problems.append(f"{where}: sections {list(monitor['properties'])}, registered {KEYS}")
    for s in MONITOR_SECTIONS:
        node = monitor["properties"].get(s.key, {})
        fields = node.get("properties", {})
        if list(fields) != section_fields(s) or node.get("additionalProperties") is not False:
            problems.append(
                f"{where}.{s.key}: fields {list(fields)}, registered {section_fields(s)}, "
                "additionalProperties must be false"
            )
        for name, expected in values_fragment(s)["properties"].items():
            found = fields.get(name)
            if found != expected:
                problems.append(f"{where}.{s.key}.{name}: {found}, registered {expected}")
    assert problems == [], to_paste(problems, values_fragment, as_json=True)


@pytest.mark.parametrize(
    ("doc", "line_mark"),
    [
        ("docs/metrics.md", "| `oomguard_monitor_up` |"),
        ("docs/operator.md", "`monitor` (`event`"),
    ],
)
def test_the_docs_list_every_monitor(doc: str, line_mark: str) -> None:
    line = next(line for line in (REPO / doc).read_text().splitlines() if line_mark in line)
    missing = [key for key in KEYS if f"`{key}`" not in line]
    assert missing == [], f"{doc}: the line listing monitors does not name {missing}"
