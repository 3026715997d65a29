import pytest

from oomguard.monitor.settings import MIB, EvictionPolicy, EvictionSettings, MonitorSettings
from oomguard.operator.resolution.policy import InvalidPolicy, Policy, parse_policy
from oomguard.operator.resolution.reserve_bytes import AbsoluteReserve


def body(spec, name="p", generation=3):
    return {"metadata": {"name": name, "generation": generation}, "spec": spec}


def test_minimal_policy_takes_defaults():
    policy = parse_policy(body({"reserve": {"absolute": "1Gi"}}))
    assert isinstance(policy, Policy)
    assert policy.name == "p"
    assert policy.generation == 3
    assert policy.priority == 0
    assert policy.reserve == AbsoluteReserve(2**30)
    assert policy.monitor == MonitorSettings()
    assert policy.eviction == EvictionSettings()
    assert policy.dry_run is False
    assert policy.selector.matches({})


def test_full_policy():
    policy = parse_policy(
        body(
            {
                "priority": 7,
                "nodeSelector": {"matchLabels": {"role": "db"}},
                "reserve": {"percent": 10, "min": "512Mi"},
                "monitor": {"pressure": {"enabled": True, "windowMilliseconds": 2000}},
                "eviction": {"policy": "QoSThenNewest", "buffer": "256Mi"},
                "dryRun": True,
            }
        )
    )
    assert isinstance(policy, Policy)
    assert policy.priority == 7
    assert policy.monitor.pressure.window_ms == 2000
    assert policy.eviction.policy is EvictionPolicy.QOS_THEN_NEWEST
    assert policy.eviction.buffer_bytes == 256 * MIB
    settings = policy.settings_for("n1", 8 * 2**30)
    assert settings.reserve_bytes == 8 * 2**30 // 10
    assert settings.source_policy == "p"
    assert settings.dry_run is True
    assert not policy.selector.matches({"role": "web"})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "reserve: expected an object"),
        ({"reserve": {"absolute": "1Gi"}, "priority": "high"}, "priority: expected an integer"),
        ({"reserve": {"absolute": "1Gi"}, "dryRun": "no"}, "dryRun: expected true or false"),
        ({"reserve": {"percent": 200}}, "less than 100"),
        ({"reserve": {"absolute": "1Gi"}, "eviction": {"buffer": "-1"}}, "eviction.buffer"),
        (
            {"reserve": {"absolute": "1Gi"}, "monitor": {"pressure": {"stallMilliseconds": 5000}}},
            "must not exceed windowMilliseconds",
        ),
        (
            {"reserve": {"absolute": "1Gi"}, "nodeSelector": {"matchExpressions": [{"key": "a"}]}},
            "operator: expected one of",
        ),
        ([], "spec: expected an object"),
    ],
)
def test_invalid_policies_carry_the_reason(spec, message):
    policy = parse_policy(body(spec, name="bad"))
    assert isinstance(policy, InvalidPolicy)
    assert policy.name == "bad"
    assert message in policy.error
