"""The storm scenarios' shapes: what each one asks of the guard, in plain numbers."""

from stormlib.plan import SCENARIOS, SHORT
from stormlib.workload import scenario_workers


def test_every_scenario_has_workers_a_label_and_a_description():
    for name in SCENARIOS:
        assert scenario_workers(name)
        assert name in SHORT


def test_the_bursting_scenario_grows_past_the_limit_in_bursts():
    *steady, burster = scenario_workers("f")
    base = sum(w.target_mib for w in steady)
    last = burster.burst_mib + (burster.bursts - 1) * burster.burst_growth_mib
    assert base + burster.burst_mib < 192  # the first bursts fit under the soft limit
    assert base + last > 256  # the last ones would pass memory.max
    assert burster.start > max(w.start for w in steady)  # the newest: the one to stop
    assert burster.planned_units == burster.bursts


def test_the_tiny_pool_has_over_a_hundred_processes_together_past_the_limit():
    workers = scenario_workers("g")
    assert len(workers) >= 100
    assert all(w.target_mib <= 4 for w in workers)
    assert sum(w.target_mib for w in workers) > 256
