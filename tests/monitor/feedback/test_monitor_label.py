"""The ``monitor`` label: one value per registered kind, named as an enum constant."""

from oomguard.monitor.feedback.monitor_label import MonitorName
from oomguard.monitor.triggers.monitor_registry import monitor_names


def test_one_value_per_kind_in_registry_order():
    assert [name.value for name in MonitorName] == monitor_names()
    assert MonitorName.HOST_MEMORY == "hostMemory"
    assert MonitorName("pressure") is MonitorName.PRESSURE
