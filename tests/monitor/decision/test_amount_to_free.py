import pytest
from hypothesis import given
from hypothesis import strategies as st

from oomguard.monitor.decision.amount_to_free import (
    amount_to_free,
    bytes_on_their_way_out,
    first_covering,
)
from oomguard.monitor.decision.candidate import Candidate

MiB = 2**20


def test_over_target_frees_overshoot_plus_buffer():
    assert amount_to_free(usage=300 * MiB, target=256 * MiB, buffer=16 * MiB) == 60 * MiB


def test_under_target_minus_buffer_frees_nothing():
    assert amount_to_free(usage=200 * MiB, target=256 * MiB, buffer=16 * MiB) == 0


def test_exactly_at_target_minus_buffer_frees_nothing():
    assert amount_to_free(usage=240 * MiB, target=256 * MiB, buffer=16 * MiB) == 0


def test_dying_memory_counts_as_freed():
    assert amount_to_free(300 * MiB, 256 * MiB, 16 * MiB, dying_bytes=50 * MiB) == 10 * MiB
    assert amount_to_free(300 * MiB, 256 * MiB, 16 * MiB, dying_bytes=500 * MiB) == 0


@pytest.mark.parametrize(("buffer", "dying"), [(-1, 0), (0, -1)])
def test_negative_inputs_are_rejected(buffer, dying):
    with pytest.raises(ValueError, match="must not be negative"):
        amount_to_free(1, 0, buffer, dying)


@given(
    st.integers(min_value=0, max_value=2**64),
    st.integers(min_value=0, max_value=2**64),
    st.integers(min_value=0, max_value=2**40),
    st.integers(min_value=0, max_value=2**64),
)
def test_never_negative_and_matches_formula(usage, target, buffer, dying):
    result = amount_to_free(usage, target, buffer, dying)
    assert result >= 0
    assert result == max(0, usage - target + buffer - dying)


def test_bytes_on_their_way_out_counts_only_dying():
    pool = [
        Candidate("1", "a", 1.0, 10, dying=True),
        Candidate("2", "b", 2.0, 20),
        Candidate("3", "c", 3.0, 30, dying=True, protected=True),
        Candidate("4", "d", 4.0, -5, dying=True),
    ]
    assert bytes_on_their_way_out(pool) == 40


def _sized(*mib):
    return [Candidate(str(i), f"p{i}", float(i), m * MiB) for i, m in enumerate(mib)]


def test_first_covering_takes_as_few_as_cover_in_order():
    pool = _sized(10, 30, 50)
    victims, covered = first_covering(pool, 35 * MiB)
    assert [v.id for v in victims] == ["0", "1"]
    assert covered == 40 * MiB


def test_first_covering_nothing_to_free_takes_nobody_and_too_little_takes_all():
    assert first_covering(_sized(10, 30), 0) == ([], 0)
    victims, covered = first_covering(_sized(10, 30), 100 * MiB)
    assert len(victims) == 2 and covered == 40 * MiB


@given(st.lists(st.integers(1, 1000), max_size=20), st.integers(0, 30_000))
def test_first_covering_stops_at_the_first_prefix_that_covers(sizes, amount):
    pool = [Candidate(str(i), "p", float(i), s) for i, s in enumerate(sizes)]
    victims, covered = first_covering(pool, amount)
    assert victims == pool[: len(victims)]
    assert covered == sum(v.memory_bytes for v in victims)
    if covered < amount:
        assert victims == pool
    elif victims:
        assert covered - victims[-1].memory_bytes < amount
