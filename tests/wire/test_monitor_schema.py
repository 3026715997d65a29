"""The monitor schema's pieces: CEL range rules, the YAML style the CRDs are written in, and
the markers a generated block sits between."""

import pytest
import yaml

from oomguard.wire import monitor_schema
from oomguard.wire.monitor_sections import pressure, threshold
from oomguard.wire.spec_section import FieldType, SpecField


@pytest.mark.parametrize(
    ("field", "rule", "message"),
    [
        (
            SpecField("n", "n", FieldType.NUMBER, 50, 100, " (why)"),
            "self >= 50.0 && self <= 100.0",
            "monitor.threshold.n must be between 50 and 100 (why)",
        ),
        (
            SpecField("n", "n", FieldType.INTEGER, 1),
            "self > 0",
            "monitor.threshold.n must be positive",
        ),
        (
            SpecField("n", "n", FieldType.INTEGER, 5),
            "self >= 5",
            "monitor.threshold.n must be at least 5",
        ),
        (
            SpecField("n", "n", FieldType.INTEGER, None, 9),
            "self <= 9",
            "monitor.threshold.n must be at most 9",
        ),
    ],
)
def test_range_rules_compare_as_the_field_is_typed(field, rule, message):
    assert monitor_schema.range_rule(threshold.SECTION, field) == {"rule": rule, "message": message}


def test_a_field_without_a_range_has_no_rule():
    assert (
        monitor_schema.range_rule(threshold.SECTION, SpecField("e", "e", FieldType.BOOLEAN)) is None
    )


def test_the_at_least_one_rule_reads_defaults_off_and_on():
    rule = monitor_schema.at_least_one_rule((threshold.SECTION, pressure.SECTION))["rule"]
    # threshold is on unless it says false; pressure is off unless it says true
    assert rule == (
        "!(has(self.threshold) && has(self.threshold.enabled) && !self.threshold.enabled"
        " && !(has(self.pressure) && has(self.pressure.enabled) && self.pressure.enabled))"
    )


def test_yaml_lines_are_the_crds_style_and_read_back():
    node = {
        "type": "object",
        "required": ["a", "b"],
        "x-kubernetes-validations": [{"rule": "self > 0", "message": "m: it"}],
        "properties": {"a": {"type": "integer", "minimum": 1}},
    }
    lines = monitor_schema.yaml_lines("monitor", node, 2)
    assert lines == [
        "  monitor:",
        "    type: object",
        "    required: [a, b]",
        "    x-kubernetes-validations:",
        '      - rule: "self > 0"',
        '        message: "m: it"',
        "    properties:",
        "      a:",
        "        type: integer",
        "        minimum: 1",
    ]
    assert yaml.safe_load("\n".join(lines)) == {"monitor": node}


def test_a_block_is_replaced_between_its_markers_only():
    text = f"a\n  {monitor_schema.BEGIN}\nold\n  {monitor_schema.END}\nb"
    assert monitor_schema.replace_block(text, ["new"], "f") == (
        f"a\n  {monitor_schema.BEGIN}\nnew\n  {monitor_schema.END}\nb"
    )
    assert monitor_schema.marker_indent(text, "f") == 2
    with pytest.raises(ValueError, match="f: expected one"):
        monitor_schema.replace_block("a\nb", ["new"], "f")
