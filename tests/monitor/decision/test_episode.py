from oomguard.monitor.decision.episode import EpisodeClock, episode_lasts
from oomguard.monitor.decision.newest_first import Outcome


def test_an_episode_lasts_until_nothing_is_left_to_free_and_the_victims_are_gone():
    assert episode_lasts(None, victims_present=False)  # first step: not yet known
    for outcome in (Outcome.VICTIMS, Outcome.WAITING, Outcome.NO_CANDIDATES):
        assert episode_lasts(outcome, victims_present=False)
    assert episode_lasts(Outcome.NOTHING_TO_FREE, victims_present=True)
    assert not episode_lasts(Outcome.NOTHING_TO_FREE, victims_present=False)


def test_an_episode_lasts_from_the_breach_to_the_step_that_sees_it_over():
    clock = EpisodeClock()
    # quiet steps: no episode, nothing reported
    assert clock.after_step(0.0, 0.0, lasts=False) is None
    # a trigger noticed at 9.5 s, measured at 10 s: the episode starts at the notice
    assert clock.after_step(9.5, 10.0, lasts=True) is None
    # steps while victims exit do not restart it
    assert clock.after_step(11.0, 11.0, lasts=True) is None
    assert clock.after_step(12.0, 12.5, lasts=True) is None
    assert clock.after_step(14.0, 14.0, lasts=False) == 4.5
    # reported once; the next quiet step says nothing, the next breach starts afresh
    assert clock.after_step(15.0, 15.0, lasts=False) is None
    assert clock.after_step(20.0, 20.0, lasts=True) is None
    assert clock.after_step(21.0, 21.0, lasts=False) == 1.0


def test_a_detection_after_the_measurement_never_makes_an_episode_negative():
    clock = EpisodeClock()
    clock.after_step(5.0, 4.0, lasts=True)
    assert clock.after_step(6.0, 6.0, lasts=False) == 2.0
