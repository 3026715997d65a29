import itertools

from oomguard.monitor.settings import EvictionSettings, MonitorSettings
from oomguard.operator.resolution.label_selector import LabelSelector
from oomguard.operator.resolution.policy import Policy
from oomguard.operator.resolution.reserve_bytes import AbsoluteReserve
from oomguard.operator.resolution.winning_policy import winning_policy


def policy(name, priority, match=None):
    return Policy(
        name=name,
        generation=1,
        priority=priority,
        selector=LabelSelector.from_spec({"matchLabels": match or {}}),
        reserve=AbsoluteReserve(1),
        monitor=MonitorSettings(),
        eviction=EvictionSettings(),
        dry_run=False,
    )


def test_no_policy_selects():
    result = winning_policy({"a": "1"}, [policy("p", 1, {"a": "2"})])
    assert result.winner is None
    assert result.selecting == ()
    assert not result.in_conflict


def test_highest_priority_wins():
    policies = [policy("low", 1), policy("high", 5), policy("mid", 3)]
    result = winning_policy({}, policies)
    assert result.winner is not None and result.winner.name == "high"
    assert result.selecting == ("high", "mid", "low")
    assert not result.in_conflict


def test_negative_priorities_order_too():
    result = winning_policy({}, [policy("a", -5), policy("b", -1)])
    assert result.winner is not None and result.winner.name == "b"


def test_selector_filters_before_priority():
    policies = [policy("gpu", 9, {"gpu": "yes"}), policy("all", 0)]
    assert winning_policy({"gpu": "no"}, policies).winner.name == "all"  # type: ignore[union-attr]
    assert winning_policy({"gpu": "yes"}, policies).winner.name == "gpu"  # type: ignore[union-attr]


def test_tie_is_broken_by_name_in_any_order_and_reported():
    policies = [policy("zeta", 4), policy("alpha", 4), policy("low", 1), policy("mid", 4)]
    for order in itertools.permutations(policies):
        result = winning_policy({}, order)
        assert result.winner is not None and result.winner.name == "alpha"
        assert result.tied == ("alpha", "mid", "zeta")
        assert result.in_conflict


def test_tie_below_the_winner_is_no_conflict():
    result = winning_policy({}, [policy("top", 9), policy("b", 1), policy("c", 1)])
    assert result.tied == ()
    assert not result.in_conflict
