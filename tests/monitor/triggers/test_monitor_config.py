"""MonitorConfig: one runtime config per kind, read typed by kind, compared as a mapping."""

from oomguard.monitor.triggers.kinds.event import EVENT, EventConfig
from oomguard.monitor.triggers.kinds.pressure import PRESSURE
from oomguard.monitor.triggers.kinds.threshold import THRESHOLD
from oomguard.monitor.triggers.monitor_config import MonitorConfig, ThresholdConfig


def test_a_kind_reads_its_own_config_or_none():
    config = MonitorConfig(EVENT.run(EventConfig(("high",))), THRESHOLD.run(ThresholdConfig(5)))
    assert config.get(THRESHOLD) == ThresholdConfig(5)
    assert config.get(EVENT) == EventConfig(("high",))
    assert config.get(PRESSURE) is None
    assert THRESHOLD in config and PRESSURE not in config


def test_the_order_runs_are_given_in_does_not_matter():
    a = MonitorConfig(EVENT.run(EventConfig()), THRESHOLD.run(ThresholdConfig(5)))
    b = MonitorConfig.of([THRESHOLD.run(ThresholdConfig(5)), EVENT.run(EventConfig())])
    assert a == b and hash(a) == hash(b)
    assert a != MonitorConfig(EVENT.run(EventConfig()), THRESHOLD.run(ThresholdConfig(6)))
