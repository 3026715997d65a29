"""Which settings the agent enforces: an offered reserve is taken, refused (last good kept,
the state says why) or changes nothing."""

import dataclasses

from monitor_fakes import MI

from oomguard.monitor.kube.node_reserve import ReserveState
from oomguard.monitor.modes.reserve_keeper import ReserveKeeper
from oomguard.wire.node_settings import default_node_settings

FALLBACK = default_node_settings("node-a", 2000 * MI)
POLICY = dataclasses.replace(FALLBACK, source_policy="p", reserve_bytes=300 * MI)


def safe(settings):
    return None


def test_a_new_reserve_is_taken_and_the_same_one_changes_nothing():
    keeper = ReserveKeeper(FALLBACK)
    state = ReserveState(POLICY, 1)
    assert keeper.offer(state, False, safe) == POLICY
    keeper.settings = POLICY  # the agent enforces it
    assert keeper.offer(ReserveState(POLICY, 2), False, safe) is None
    assert keeper.state == ReserveState(POLICY, 2) and keeper.refused is None


def test_dry_run_on_the_command_line_wins():
    keeper = ReserveKeeper(FALLBACK)
    taken = keeper.offer(ReserveState(POLICY, 1), True, safe)
    assert taken is not None and taken.dry_run


def test_an_unsafe_reserve_is_refused_and_the_state_keeps_the_last_good():
    keeper = ReserveKeeper(FALLBACK)
    assert keeper.offer(ReserveState(POLICY, 3), False, lambda s: "too small") is None
    assert keeper.settings == FALLBACK and keeper.refused == "too small"
    assert keeper.state == ReserveState(FALLBACK, 3, "too small")
    assert keeper.offer(ReserveState(FALLBACK, None), False, safe) is None
    assert keeper.refused is None  # back to what is enforced
