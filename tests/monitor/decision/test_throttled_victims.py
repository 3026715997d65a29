"""The early-SIGKILL rule for victims asleep in memory.high's penalty, on plain data."""

import pytest

from oomguard.monitor.decision.throttled_victims import ThrottledVictims


def test_a_victim_asleep_in_the_penalty_for_the_patience_is_killed():
    rule = ThrottledVictims(patience=0.25)
    assert rule.kill_now("1@5.0", True, 10.0) is False  # first seen: nothing counted yet
    assert rule.kill_now("1@5.0", True, 10.125) is False
    assert rule.kill_now("1@5.0", True, 10.25) is True


def test_time_asleep_adds_up_across_the_moments_it_runs():
    """A throttled allocator runs briefly between its sleeps: those checks do not count,
    and do not wipe what was counted."""
    rule = ThrottledVictims(patience=0.375)
    checks = [(10.0, True), (10.125, True), (10.25, False), (10.375, True), (10.5, False)]
    assert not any(rule.kill_now("1@5.0", asleep, now) for now, asleep in checks)
    assert rule.kill_now("1@5.0", True, 10.625) is True  # 0.125 + 0.125 + 0.125 asleep


def test_a_victim_never_throttled_keeps_its_grace():
    rule = ThrottledVictims(patience=0.0)
    assert not any(rule.kill_now("1@5.0", False, 10.0 + t / 8) for t in range(100))


def test_victims_are_timed_apart():
    rule = ThrottledVictims(patience=0.25)
    rule.kill_now("1@5.0", True, 10.0)
    assert rule.kill_now("2@6.0", True, 10.25) is False  # first seen now
    assert rule.kill_now("1@5.0", True, 10.25) is True


def test_zero_patience_kills_at_the_first_sighting():
    assert ThrottledVictims(patience=0.0).kill_now("1@5.0", True, 10.0) is True


def test_negative_patience_is_refused():
    with pytest.raises(ValueError, match="patience"):
        ThrottledVictims(patience=-1.0)
