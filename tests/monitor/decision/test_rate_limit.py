import pytest
from hypothesis import given
from hypothesis import strategies as st

from oomguard.monitor.decision.rate_limit import TokenBucket


def test_burst_then_empty():
    bucket = TokenBucket(per_minute=3, burst=3, now=0.0)
    assert [bucket.try_take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.available(0.0) == 0


def test_refills_evenly():
    bucket = TokenBucket(per_minute=6, burst=2, now=0.0)
    assert bucket.try_take(0.0) and bucket.try_take(0.0)
    assert not bucket.try_take(9.9)
    assert bucket.seconds_until_next(9.9) == pytest.approx(0.1)
    assert bucket.try_take(10.0)
    assert not bucket.try_take(10.0)


def test_never_holds_more_than_burst():
    bucket = TokenBucket(per_minute=60, burst=2, now=0.0)
    assert bucket.available(1000.0) == 2


def test_clock_stepping_back_adds_nothing():
    bucket = TokenBucket(per_minute=60, burst=1, now=100.0)
    assert bucket.try_take(100.0)
    assert not bucket.try_take(50.0)
    assert not bucket.try_take(100.5)
    assert bucket.try_take(101.0)


@pytest.mark.parametrize(("per_minute", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_rejects_nonsense(per_minute, burst):
    with pytest.raises(ValueError):
        TokenBucket(per_minute=per_minute, burst=burst, now=0.0)


@given(
    per_minute=st.integers(1, 30),
    times=st.lists(st.floats(0, 600, allow_nan=False), min_size=1, max_size=200),
)
def test_any_minute_sees_at_most_burst_plus_rate(per_minute, times):
    bucket = TokenBucket(per_minute=per_minute, burst=per_minute, now=0.0)
    taken = [t for t in sorted(times) if bucket.try_take(t)]
    for start in taken:
        in_window = [t for t in taken if start <= t < start + 60.0]
        assert len(in_window) <= 2 * per_minute
    # over the whole run: the burst plus what refilled
    assert len(taken) <= per_minute + per_minute * max(times) / 60.0 + 1e-6
