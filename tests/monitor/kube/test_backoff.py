import pytest

from oomguard.monitor.kube.backoff import Backoff


def test_grows_to_cap_and_resets():
    b = Backoff(initial=1, maximum=5, factor=2)
    assert [b.next_delay() for _ in range(5)] == [1, 2, 4, 5, 5]
    b.reset()
    assert b.next_delay() == 1


def test_jitter_stays_within_fraction():
    b = Backoff(initial=1, maximum=1, factor=1, jitter=0.5)
    for _ in range(100):
        assert 1 <= b.next_delay() <= 1.5


def test_full_jitter_draws_below_the_exponential_delay():
    draws = iter([0.0, 0.5, 0.99, 0.5])
    b = Backoff(initial=1, maximum=4, full_jitter=True, rng=lambda: next(draws))
    assert [b.next_delay() for _ in range(4)] == [0.0, 1.0, 0.99 * 4, 2.0]


def test_full_jitter_spreads_many_clients_over_the_whole_window():
    delays = [Backoff(initial=2, full_jitter=True).next_delay() for _ in range(1000)]
    assert all(0 <= d < 2 for d in delays)
    assert min(delays) < 0.2 and max(delays) > 1.8  # not bunched near one end


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": 0},
        {"initial": 2, "maximum": 1},
        {"factor": 0.5},
        {"jitter": 0.2, "full_jitter": True},
    ],
)
def test_rejects_nonsense(kwargs):
    with pytest.raises(ValueError):
        Backoff(**kwargs)
