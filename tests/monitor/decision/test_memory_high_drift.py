from oomguard.monitor.decision.memory_high_drift import DriftCheck, DriftEpisodes


def test_an_episode_lasts_until_a_check_finds_our_value():
    drift = DriftEpisodes()
    seen = [drift.observe(d) for d in (False, True, True, True, False, True, False)]
    assert seen == [
        DriftCheck.IN_PLACE,
        DriftCheck.STARTED,
        DriftCheck.CONTINUES,
        DriftCheck.CONTINUES,
        DriftCheck.IN_PLACE,
        DriftCheck.STARTED,
        DriftCheck.IN_PLACE,
    ]
    assert (drift.repairs, drift.episodes) == (4, 2)


def test_end_closes_an_episode():
    drift = DriftEpisodes()
    drift.observe(True)
    drift.end()
    assert drift.observe(True) is DriftCheck.STARTED
    assert drift.episodes == 2
