"""MonitorSettings: one settings object per registered section, built by class or attribute,
read typed by section, immutable."""

import copy

import pytest

from oomguard.wire.monitor_sections import pressure, threshold
from oomguard.wire.monitor_settings import (
    MonitorSettings,
    PressureMonitorSettings,
    ThresholdMonitorSettings,
    spoken_list,
)


def test_sections_given_by_class_or_attribute_land_in_their_place():
    by_class = MonitorSettings(PressureMonitorSettings(True), ThresholdMonitorSettings(False))
    by_attr = MonitorSettings(
        pressure=PressureMonitorSettings(True), threshold=ThresholdMonitorSettings(False)
    )
    assert by_class == by_attr and hash(by_class) == hash(by_attr)
    assert by_class[pressure.SECTION].enabled and not by_class[threshold.SECTION].enabled
    assert by_class.pressure is by_class[pressure.SECTION]
    assert by_class != MonitorSettings()


def test_an_unregistered_section_is_refused():
    with pytest.raises(TypeError, match="no registered section"):
        MonitorSettings(swap=PressureMonitorSettings())
    with pytest.raises(AttributeError, match="no section 'swap'"):
        MonitorSettings().swap  # noqa: B018


def test_it_cannot_be_changed():
    settings = MonitorSettings()
    with pytest.raises(AttributeError, match="immutable"):
        settings.threshold = ThresholdMonitorSettings(False)
    assert copy.deepcopy(settings) is settings


def test_alternatives_are_listed_as_a_sentence():
    assert spoken_list(["a"]) == "a"
    assert spoken_list(["a", "b", "c"]) == "a, b or c"
