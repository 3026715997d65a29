"""A new kind of monitor is its declaration plus a registry line: everything else picks it up.

``swap`` below is a throwaway kind declared in this module alone (its spec section and its
``MonitorKind``, the two halves that in the package live in ``wire/monitor_sections/`` and
``monitor/triggers/kinds/``), registered by extending the two registry tuples. Nothing else
is edited, and the settings codec, the node agent's plan, the guard's config, building,
names, the metrics label, the generated schema and the docs table all carry it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from oomguard.monitor.feedback.monitor_label import monitor_name_enum
from oomguard.monitor.kernel.cgroupfs import Cgroup
from oomguard.monitor.modes.node_monitors import node_monitor_plan
from oomguard.monitor.triggers import monitor_registry, monitor_schema_files, monitor_table
from oomguard.monitor.triggers.kinds.threshold import THRESHOLD
from oomguard.monitor.triggers.monitor_config import ThresholdConfig
from oomguard.monitor.triggers.monitor_kind import GuardFacts, MonitorKind, NodeFacts, Off
from oomguard.monitor.triggers.threshold_monitor import ThresholdMonitor
from oomguard.monitor.triggers.trigger import Monitor, TriggerKind
from oomguard.wire import monitor_schema
from oomguard.wire.monitor_sections.polled import INTERVAL_MS, PolledMonitorSettings, usage_percent
from oomguard.wire.monitor_settings import MONITOR_SECTIONS, MonitorSettings
from oomguard.wire.spec_fields import SettingsError
from oomguard.wire.spec_section import ENABLED, MonitorSection, SpecField

# --- the new kind: its whole declaration ---------------------------------------------------


@dataclass(frozen=True)
class SwapMonitorSettings(PolledMonitorSettings):
    """Poll the machine's used swap against a share of its swap space. Off by default."""

    SPEC_PATH: ClassVar[str] = "monitor.swap"
    FIELDS: ClassVar[tuple[SpecField, ...]] = (ENABLED, usage_percent(""), INTERVAL_MS)

    enabled: bool = False
    usage_percent: float = 80.0


SWAP_SECTION = MonitorSection(
    "swap", SwapMonitorSettings, "Used swap against usagePercent of swap.", stands_alone=False
)


class FixedUsage:
    """A usage source that reads a constant (the real one would read /proc/meminfo)."""

    name = "swap used"

    def read(self) -> int:
        return 900

    def upper_bound(self) -> int | None:
        return None


class SwapKind(MonitorKind[SwapMonitorSettings, ThresholdConfig]):
    section = SWAP_SECTION
    trigger = TriggerKind.THRESHOLD
    polls = True

    def node_config(self, settings: SwapMonitorSettings, facts: NodeFacts) -> ThresholdConfig | Off:
        if facts.node_memory_bytes <= 0:
            return Off("swap monitor off: the node's memory is not known")
        limit = int(facts.node_memory_bytes * settings.usage_percent / 100)
        return ThresholdConfig(limit, settings.interval_ms / 1000)

    def guard_config(self, facts: GuardFacts) -> ThresholdConfig | None:
        return (
            ThresholdConfig(facts.memory_high, facts.interval_s) if "swap" in facts.asked else None
        )

    def build(self, cgroup: Cgroup, config: ThresholdConfig) -> Monitor:
        return ThresholdMonitor(FixedUsage(), config.limit_bytes, config.interval_s, name=self.name)


SWAP = SwapKind()

# --- the registry lines --------------------------------------------------------------------

KINDS = (*monitor_registry.MONITOR_KINDS, SWAP)
SECTIONS = (*MONITOR_SECTIONS, SWAP_SECTION)

# -------------------------------------------------------------------------------------------


@pytest.fixture
def repo_texts():
    root = Path(__file__).resolve().parents[3]
    return {path: (root / path).read_text() for path in monitor_schema_files.FILES}


def settings(**sections):
    return MonitorSettings(registry=SECTIONS, **sections)


def test_the_settings_codec_reads_writes_and_checks_the_new_section():
    assert settings().swap == SwapMonitorSettings()
    read = MonitorSettings.from_spec(
        {"swap": {"enabled": True, "usagePercent": 70}}, registry=SECTIONS
    )
    assert read[SWAP_SECTION] == SwapMonitorSettings(True, 70.0, 1000)
    spec = read.to_spec()
    assert spec["swap"] == {"enabled": True, "usagePercent": 70.0, "intervalMilliseconds": 1000}
    assert MonitorSettings.from_spec(spec, registry=SECTIONS) == read
    with pytest.raises(SettingsError, match=r"monitor\.swap\.usagePercent"):
        MonitorSettings.from_spec({"swap": {"usagePercent": 0}}, registry=SECTIONS)
    with pytest.raises(SettingsError, match=r"monitor\.swap: expected an object"):
        MonitorSettings.from_spec({"swap": 3}, registry=SECTIONS)
    # an extra watcher: it does not count for "at least one of event, threshold or pressure"
    with pytest.raises(SettingsError, match="at least one of event, threshold or pressure"):
        MonitorSettings.from_spec(
            {
                "event": {"enabled": False},
                "threshold": {"enabled": False},
                "swap": {"enabled": True},
            },
            registry=SECTIONS,
        )


def test_the_node_agent_plans_it_from_its_own_rule():
    wanted = settings(swap=SwapMonitorSettings(True, 50.0, 250))
    plan = node_monitor_plan(wanted, 900, True, node_memory_bytes=4000, kinds=KINDS)
    assert plan.config.get(SWAP) == ThresholdConfig(2000, 0.25)
    assert plan.config.get(THRESHOLD) == ThresholdConfig(900, 1.0)
    assert plan.notes == ()
    unknown = node_monitor_plan(wanted, 900, True, kinds=KINDS)
    assert SWAP not in unknown.config
    assert unknown.notes == ("swap monitor off: the node's memory is not known",)
    off = node_monitor_plan(settings(), 900, True, node_memory_bytes=4000, kinds=KINDS)
    assert SWAP not in off.config  # disabled by default


def test_it_is_built_named_and_polled_like_any_kind(fake_cgroup):
    wanted = settings(swap=SwapMonitorSettings(True))
    config = node_monitor_plan(wanted, 900, True, node_memory_bytes=1000, kinds=KINDS).config
    assert monitor_registry.wanted_names(config, KINDS) == ["event", "threshold", "swap"]
    monitors = monitor_registry.build_monitors(fake_cgroup, config, KINDS)
    assert [m.name for m in monitors] == ["event", "threshold", "swap"]
    triggers = []
    assert monitors[-1].poll_once(triggers.append)  # 900 used, line at 800
    assert triggers[0].kind is TriggerKind.THRESHOLD
    assert monitor_registry.polled(config, KINDS)
    assert "swap" in monitor_registry.monitor_names(KINDS)
    assert monitor_name_enum(KINDS).SWAP == "swap"
    # the registry without the line does not know it
    with pytest.raises(ValueError, match="no such monitor: swap"):
        monitor_registry.build_monitors(fake_cgroup, config)


def test_the_guard_offers_it_through_its_own_rule():
    assert monitor_registry.guard_names(KINDS) == ("event", "threshold", "swap")
    facts = GuardFacts(frozenset({"swap"}), memory_high=1000, interval_s=0.5)
    config = monitor_registry.guard_config(facts, KINDS)
    assert monitor_registry.wanted_names(config, KINDS) == ["swap"]
    assert config.get(SWAP) == ThresholdConfig(1000, 0.5)


def test_the_generated_schema_and_docs_carry_it():
    policy = monitor_schema.policy_crd_monitor(SECTIONS)["properties"]["swap"]
    assert policy["description"] == SWAP_SECTION.description
    assert policy["properties"]["usagePercent"]["x-kubernetes-validations"] == [
        {
            "rule": "self >= 50.0 && self <= 100.0",
            "message": "monitor.swap.usagePercent must be between 50 and 100",
        }
    ]
    reserve = monitor_schema.reserve_crd_monitor(SECTIONS)
    assert reserve["required"] == ["event", "threshold", "pressure", "swap"]  # not optional
    assert reserve["properties"]["swap"]["required"] == [f.spec for f in SwapMonitorSettings.FIELDS]
    values = monitor_schema.values_schema_monitor(SECTIONS)["properties"]["swap"]
    assert values["additionalProperties"] is False
    assert values["properties"]["intervalMilliseconds"] == {
        "type": "integer",
        "minimum": 10,
        "maximum": 60000,
    }
    row = monitor_table.monitor_table(KINDS)[-1]
    assert row.startswith("| `swap` | threshold | `enabled`, `usagePercent` (50 to 100)")
    assert "| off, 80, 1000 |" in row


def test_the_generator_writes_it_into_the_files(repo_texts):
    written = monitor_schema_files.regenerate(repo_texts, KINDS)
    for path in (monitor_schema_files.POLICY_CRD, monitor_schema_files.RESERVE_CRD):
        crd = yaml.safe_load(written[path])
        version = next(v for v in crd["spec"]["versions"] if v["storage"])
        spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        assert list(spec["monitor"]["properties"])[-1] == "swap", path
    assert '"swap"' in written[monitor_schema_files.VALUES_SCHEMA]
    assert "| `swap` |" in written[monitor_schema_files.DOCS]
    assert written != repo_texts  # the files in the repository do not know it
