"""Measuring only what a decision needs: the same decision as with everyone measured, and
far fewer measurements."""

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from oomguard.monitor.decision.candidate import Candidate
from oomguard.monitor.decision.measure_plan import first_to_measure, measured_for_decision
from oomguard.monitor.decision.newest_first import InFlight, Limits, decide

MiB = 2**20
LIMITS = Limits(target=200 * MiB, buffer=10 * MiB, in_flight_timeout=5.0)


class Proc:
    """The truth (every candidate's memory) and a count of what was measured."""

    def __init__(self, pool):
        self.truth = {c.id: c for c in pool}
        self.measured: list[str] = []

    def listed(self):
        return [replace(c, memory_bytes=0) for c in self.truth.values()]

    def measure(self, listed):
        self.measured += [c.id for c in listed]
        return [self.truth[c.id] for c in listed]


def lazily(pool, usage, now, in_flight):
    proc = Proc(pool)
    listed = proc.listed()
    first = proc.measure(first_to_measure(listed, LIMITS, now, in_flight))
    measured = measured_for_decision(listed, first, usage, LIMITS, now, in_flight, proc.measure)
    return decide(measured, usage, LIMITS, now, in_flight), proc.measured


candidates = st.lists(
    st.builds(
        lambda started, mib, protected, dying: (started, mib, protected, dying),
        st.integers(0, 50),
        st.integers(0, 80),
        st.booleans(),
        st.booleans(),
    ),
    max_size=12,
)


@given(
    candidates,
    st.integers(0, 400),
    st.sets(st.integers(0, 11), max_size=4),
    st.sampled_from([None, 1.0, 9.0]),
)
def test_the_decision_is_the_one_made_with_everyone_measured(specs, usage_mib, previous, age):
    pool = [
        Candidate(str(i), f"w{i}", float(started), mib * MiB, protected=protected, dying=dying)
        for i, (started, mib, protected, dying) in enumerate(specs)
    ]
    now = 10.0
    in_flight = None if age is None else InFlight(frozenset(map(str, previous)), now - age)
    full = decide(pool, usage_mib * MiB, LIMITS, now, in_flight)
    lazy, _ = lazily(pool, usage_mib * MiB, now, in_flight)
    assert (lazy.outcome, lazy.amount_to_free, lazy.victims) == (
        full.outcome,
        full.amount_to_free,
        full.victims,
    )


def test_only_the_newest_that_cover_the_amount_are_measured():
    pool = [Candidate(str(i), f"w{i}", float(i), 40 * MiB) for i in range(40)]
    decision, measured = lazily(pool, 250 * MiB, 10.0, None)  # 60 MiB to free
    assert [v.id for v in decision.victims] == ["39", "38"]
    assert measured == ["39", "38"]


def test_under_target_or_waiting_for_victims_measures_no_one_eligible():
    pool = [Candidate(str(i), f"w{i}", float(i), 40 * MiB) for i in range(40)]
    _, measured = lazily(pool, 150 * MiB, 10.0, None)
    assert measured == []
    dying = [replace(c, dying=True) if c.id == "39" else c for c in pool]
    waiting = InFlight(frozenset({"39"}), 9.0)
    _, measured = lazily(dying, 300 * MiB, 10.0, waiting)
    assert measured == ["39"]  # the victim in flight: its memory is on its way out
