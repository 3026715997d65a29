import pytest

from oomguard.monitor.settings import (
    GIB,
    MIB,
    EvictionPolicy,
    EvictionSettings,
    MonitorSettings,
    NodeSettings,
    PressureMonitorSettings,
    SettingsError,
    ThresholdMonitorSettings,
    default_node_settings,
    default_reserve_bytes,
)


def full_spec() -> dict:
    return {
        "nodeName": "node-a",
        "sourcePolicy": "workers",
        "nodeMemoryBytes": 8 * GIB,
        "reserveBytes": GIB,
        "monitor": {
            "event": {"enabled": False},
            "threshold": {"enabled": True, "usagePercent": 80.5, "intervalMilliseconds": 250},
            "pressure": {"enabled": True, "stallMilliseconds": 150, "windowMilliseconds": 2000},
        },
        "eviction": {
            "policy": "QoSThenNewest",
            "gracePeriodSeconds": 0,
            "bufferBytes": 128 * MIB,
            "maxEvictionsPerMinute": 30,
            "killFallback": {"enabled": False, "waitSeconds": 5},
            "protectedNamespaces": ["monitoring", "kube-system"],
            "protectAnnotationNamespaces": ["team-a"],
            "protectDaemonSetPods": False,
            "pressureCooldownSeconds": 120,
        },
        "dryRun": True,
    }


def test_full_spec_round_trips():
    settings = NodeSettings.from_spec(full_spec())
    assert settings.reserve_bytes == GIB
    assert settings.monitor.threshold.usage_percent == 80.5
    assert settings.monitor.pressure == PressureMonitorSettings(True, 150, 2000)
    assert settings.eviction.policy is EvictionPolicy.QOS_THEN_NEWEST
    assert settings.eviction.protected_namespaces == ("kube-system", "monitoring")
    assert settings.dry_run is True
    assert settings.source_policy == "workers"
    again = NodeSettings.from_spec(settings.to_spec())
    assert again == settings
    spec = full_spec()
    spec["eviction"]["protectedNamespaces"].sort()
    assert settings.to_spec() == spec


def test_missing_sub_settings_keep_defaults():
    settings = NodeSettings.from_spec(
        {"nodeName": "n", "sourcePolicy": "p", "nodeMemoryBytes": 0, "reserveBytes": 5}
    )
    assert settings.monitor == MonitorSettings()
    assert settings.eviction == EvictionSettings()
    assert settings.dry_run is False


def test_partial_monitor_spec_merges_onto_base():
    base = MonitorSettings(threshold=ThresholdMonitorSettings(usage_percent=70.0))
    merged = MonitorSettings.from_spec({"pressure": {"enabled": True}}, base)
    assert merged.threshold.usage_percent == 70.0
    assert merged.pressure.enabled is True
    assert merged.pressure.window_ms == 1000


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("reserveBytes",), -1, "reserveBytes: must not be negative"),
        (("reserveBytes",), "1Gi", "spec.reserveBytes: expected an integer"),
        (("nodeName",), "", "nodeName: expected a non-empty string"),
        (("sourcePolicy",), None, "sourcePolicy: expected a non-empty string"),
        (("dryRun",), "yes", "spec.dryRun: expected true or false"),
        (("monitor", "threshold", "usagePercent"), 0, "usagePercent: must be greater than 0"),
        (("monitor", "threshold", "usagePercent"), 100.5, "at most 100"),
        (("monitor", "threshold", "usagePercent"), True, "expected a number"),
        (("monitor", "threshold", "intervalMilliseconds"), 5, "between 10 and 60000"),
        (("monitor", "pressure", "windowMilliseconds"), 499, "between 500 and 10000"),
        (("monitor", "pressure", "windowMilliseconds"), 10_001, "between 500 and 10000"),
        (("monitor", "pressure", "stallMilliseconds"), 0, "stallMilliseconds: must be positive"),
        (("monitor", "pressure", "stallMilliseconds"), 2001, "must not exceed windowMilliseconds"),
        (("monitor", "event"), [], "monitor.event: expected an object"),
        (("eviction", "policy"), "OldestFirst", "expected one of NewestFirst, QoSThenNewest"),
        (("eviction", "gracePeriodSeconds"), -1, "gracePeriodSeconds: must not be negative"),
        (("eviction", "bufferBytes"), -5, "bufferBytes: must not be negative"),
        (("eviction", "maxEvictionsPerMinute"), 0, "between 1 and 600"),
        (("eviction", "killFallback", "waitSeconds"), -1, "between 0 and 3600"),
        (("eviction", "killFallback", "enabled"), 1, "expected true or false"),
        (("eviction", "pressureCooldownSeconds"), -1, "between 0 and 3600"),
        (("eviction", "pressureCooldownSeconds"), 3601, "between 0 and 3600"),
        (("eviction", "protectedNamespaces"), ["ok", ""], "expected a list of namespace names"),
        (("eviction", "protectedNamespaces"), "kube-system", "expected a list"),
    ],
)
def test_invalid_specs_name_the_field(path, value, message):
    spec = full_spec()
    target = spec
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(SettingsError, match=message):
        NodeSettings.from_spec(spec)


def test_all_monitors_disabled_is_refused():
    spec = full_spec()
    spec["monitor"]["threshold"]["enabled"] = False
    spec["monitor"]["pressure"]["enabled"] = False
    with pytest.raises(SettingsError, match="at least one of event, threshold or pressure"):
        NodeSettings.from_spec(spec)


def test_required_bytes_fields():
    spec = full_spec()
    del spec["reserveBytes"]
    with pytest.raises(SettingsError, match="reserveBytes: is required"):
        NodeSettings.from_spec(spec)


def test_spec_must_be_an_object():
    with pytest.raises(SettingsError, match="spec: expected an object"):
        NodeSettings.from_spec([])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("memory", "reserve"),
    [
        (0, 512 * MIB),
        (2 * GIB, 512 * MIB),
        (5 * GIB, 512 * MIB),
        (8 * GIB, 8 * GIB // 10),
        (64 * GIB, 64 * GIB // 10),
        (100 * GIB, 10 * GIB),
        (512 * GIB, 10 * GIB),
    ],
)
def test_default_reserve_is_ten_percent_clamped(memory, reserve):
    assert default_reserve_bytes(memory) == reserve


def test_default_node_settings_have_no_source_and_no_spec():
    settings = default_node_settings("node-a", 16 * GIB)
    assert settings.is_default
    assert settings.reserve_bytes == 16 * GIB // 10
    with pytest.raises(SettingsError, match="built-in defaults have no spec"):
        settings.to_spec()


def test_host_memory_section_is_written_only_when_it_differs_from_the_defaults():
    base = NodeSettings.from_spec(full_spec())
    assert "hostMemory" not in base.to_spec()["monitor"]
    spec = full_spec()
    spec["monitor"]["hostMemory"] = {
        "enabled": True,
        "usagePercent": 90.0,
        "intervalMilliseconds": 500,
    }
    settings = NodeSettings.from_spec(spec)
    assert settings.monitor.host_memory.enabled
    assert settings.to_spec()["monitor"] == spec["monitor"]
    spec["monitor"]["hostMemory"]["usagePercent"] = 0
    with pytest.raises(SettingsError, match=r"monitor\.hostMemory\.usagePercent"):
        NodeSettings.from_spec(spec)
