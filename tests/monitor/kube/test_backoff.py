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


@pytest.mark.parametrize("kwargs", [{"initial": 0}, {"initial": 2, "maximum": 1}, {"factor": 0.5}])
def test_rejects_nonsense(kwargs):
    with pytest.raises(ValueError):
        Backoff(**kwargs)
