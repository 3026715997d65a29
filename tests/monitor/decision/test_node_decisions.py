import pytest

from oomguard.monitor.decision.candidate import Candidate
from oomguard.monitor.decision.kill_fallback import kill_fallback
from oomguard.monitor.decision.kubepods_high import kubepods_high

GI = 2**30
MI = 2**20


def test_high_is_memory_minus_reserve():
    h = kubepods_high(16 * GI, 2 * GI, None)
    assert h.bytes == 14 * GI and not h.capped_by_max


def test_high_is_capped_below_kubepods_max():
    h = kubepods_high(16 * GI, 1 * GI, 14 * GI, margin_bytes=64 * MI)
    assert h.bytes == 14 * GI - 64 * MI and h.capped_by_max
    assert kubepods_high(16 * GI, 4 * GI, 14 * GI).bytes == 12 * GI


@pytest.mark.parametrize(
    ("memory", "reserve", "maximum", "margin"),
    [
        (0, 0, None, 0),
        (GI, GI, None, 0),
        (GI, 2 * GI, None, 0),
        (GI, 0, MI, 2 * MI),
        (GI, -1, None, 0),
    ],
)
def test_high_rejects_impossible_settings(memory, reserve, maximum, margin):
    with pytest.raises(ValueError):
        kubepods_high(memory, reserve, maximum, margin)


POOL = [
    Candidate("old", "ns/old", 1.0, 300 * MI),
    Candidate("mid", "ns/mid", 2.0, 200 * MI),
    Candidate("new", "ns/new", 3.0, 100 * MI),
    Candidate("fresh", "ns/fresh", 4.0, 100 * MI),  # never chosen
]
CHOSEN = {"old": 0.0, "mid": 0.0, "new": 5.0}


def fallback(**overrides):
    kwargs = dict(
        now=10.0,
        usage=1000 * MI,
        target=800 * MI,
        buffer=50 * MI,
        wait_seconds=10.0,
        chosen_at=CHOSEN,
        candidates=POOL,
        evictable_left=False,
    )
    kwargs.update(overrides)
    return kill_fallback(**kwargs)


def test_kills_the_newest_chosen_pods_that_waited_enough():
    d = fallback()
    # "new" has only waited 5 s; "mid" (200Mi) covers 250Mi? no: then "old" too
    assert [c.id for c in d.victims] == ["mid", "old"]


def test_stops_as_soon_as_covered():
    d = fallback(usage=900 * MI)
    assert [c.id for c in d.victims] == ["mid"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"enabled": False},
        {"usage": 800 * MI},
        {"evictable_left": True},
        {"now": 9.0},
        {"chosen_at": {}},
        {"candidates": [Candidate("old", "ns/old", 1.0, 0)]},
    ],
)
def test_no_kill(overrides):
    assert fallback(**overrides).victims == ()
