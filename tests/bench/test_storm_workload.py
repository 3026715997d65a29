"""The storm scenarios' shapes: what each one asks of the guard, in plain numbers."""

from stormlib.plan import SCENARIOS, SHORT
from stormlib.workload import scenario_workers


def test_every_scenario_has_workers_a_label_and_a_description():
    for name in SCENARIOS:
        assert scenario_workers(name)
        assert name in SHORT


def test_the_bursting_scenario_crosses_the_soft_limit_each_burst_and_creeps_past_the_limit():
    *steady, burster = scenario_workers("f")
    base = sum(w.target_mib for w in steady)
    kept = burster.bursts * burster.burst_keep_mib
    assert base < 192 < base + burster.burst_mib < 256  # each burst over the soft limit only
    assert base + burster.burst_mib + kept > 256  # what it keeps takes it past memory.max
    assert burster.start > max(w.start for w in steady)  # the newest: the one to stop
    assert min(w.start + w.hold for w in steady) > burster.start + burster.bursts * 0.08
    assert burster.planned_units == burster.bursts


def test_the_tiny_pool_has_over_a_hundred_processes_together_past_the_limit():
    workers = scenario_workers("g")
    assert len(workers) >= 100
    assert all(w.target_mib <= 4 for w in workers)
    assert sum(w.target_mib for w in workers) > 256
