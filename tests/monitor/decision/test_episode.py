from oomguard.monitor.decision.episode import episode_lasts
from oomguard.monitor.decision.newest_first import Outcome


def test_an_episode_lasts_until_nothing_is_left_to_free_and_the_victims_are_gone():
    assert episode_lasts(None, victims_present=False)  # first step: not yet known
    for outcome in (Outcome.VICTIMS, Outcome.WAITING, Outcome.NO_CANDIDATES):
        assert episode_lasts(outcome, victims_present=False)
    assert episode_lasts(Outcome.NOTHING_TO_FREE, victims_present=True)
    assert not episode_lasts(Outcome.NOTHING_TO_FREE, victims_present=False)
