"""When the node agent reports MemoryPressure: every short history of steps against a
reference written the other way round (from the end of the history backwards)."""

from __future__ import annotations

import itertools

import pytest

from oomguard.monitor.decision.memory_pressure import (
    PressureReason,
    PressureState,
    evicting,
    message,
    observe,
)

COOLDOWN = 60.0
# one step: (seconds since the previous step, pods freed, episode still going on after it)
STEPS = list(itertools.product((10.0, 50.0), (0, 1), (False, True)))


def reference(history: list[tuple[float, int, bool]]) -> tuple[bool, bool]:
    """(under pressure, cooling down) after ``history``, read backwards: the last step that
    freed a pod starts pressure; it ends once, after it, the episode stayed over (counting
    from the first step that saw it over) for at least the cooldown."""
    times = list(itertools.accumulate(dt for dt, _, _ in history))
    freeing = [i for i, (_, freed, _) in enumerate(history) if freed]
    if not freeing:
        return False, False
    start = freeing[-1]
    calm_from = None
    for i in range(start, len(history)):
        if history[i][2]:
            calm_from = None
            continue
        calm_from = times[i] if calm_from is None else calm_from
        if times[i] - calm_from >= COOLDOWN:
            return False, False  # cleared at step i; nothing freed since
    return True, calm_from is not None


@pytest.mark.parametrize("length", [1, 2, 3, 4])
def test_every_history_matches_the_reference(length):
    for history in itertools.product(STEPS, repeat=length):
        state, now = PressureState(), 0.0
        for dt, freed, episode in history:
            now += dt
            state = observe(state, now, freed=freed, episode=episode, cooldown=COOLDOWN)
        pressure, cooling = reference(list(history))
        assert state.under_pressure is pressure, history
        assert (state.reason is PressureReason.COOLING_DOWN) is cooling, history
        expected = sum(f for _, f, _ in history[_last_start(history) :]) if pressure else 0
        assert state.freed == expected, history


def _last_start(history):
    """Where the pressure the history ends in began (its first freeing step after the last
    clear)."""
    state, now, start = PressureState(), 0.0, 0
    for i, (dt, freed, episode) in enumerate(history):
        now += dt
        was = state.under_pressure
        state = observe(state, now, freed=freed, episode=episode, cooldown=COOLDOWN)
        if state.under_pressure and not was:
            start = i
    return start


def test_an_episode_without_evictions_starts_no_pressure():
    state = observe(PressureState(), 1.0, freed=0, episode=True, cooldown=COOLDOWN)
    assert state == PressureState()
    assert state.reason is PressureReason.NO_EVICTIONS


def test_planned_evictions_put_the_node_under_pressure_before_any_answer():
    state = evicting(PressureState(), 10.0)
    assert (state.since, state.reason, state.freed) == (10.0, PressureReason.EVICTING, 0)
    # an answer that freed nothing (a PodDisruptionBudget) keeps it while the episode lasts
    state = observe(state, 11.0, freed=0, episode=True, cooldown=COOLDOWN)
    assert (state.since, state.reason) == (10.0, PressureReason.EVICTING)
    # a cooling node that plans again is evicting again, from its first start
    cooling = observe(state, 20.0, freed=0, episode=False, cooldown=COOLDOWN)
    assert cooling.reason is PressureReason.COOLING_DOWN
    again = evicting(cooling, 30.0)
    assert (again.since, again.reason, again.freed) == (10.0, PressureReason.EVICTING, 0)
    # and the evictions' answers count what they freed
    assert observe(again, 31.0, freed=2, episode=True, cooldown=COOLDOWN).freed == 2


def test_pressure_lasts_while_the_episode_does_then_the_cooldown():
    state = observe(PressureState(), 100.0, freed=2, episode=True, cooldown=COOLDOWN)
    assert (state.since, state.reason, state.freed) == (100.0, PressureReason.EVICTING, 2)
    state = observe(state, 500.0, freed=0, episode=True, cooldown=COOLDOWN)  # long storm
    assert state.reason is PressureReason.EVICTING
    state = observe(state, 501.0, freed=0, episode=False, cooldown=COOLDOWN)
    assert (state.reason, state.calm_since) == (PressureReason.COOLING_DOWN, 501.0)
    state = observe(state, 560.9, freed=0, episode=False, cooldown=COOLDOWN)
    assert state.under_pressure
    state = observe(state, 561.0, freed=0, episode=False, cooldown=COOLDOWN)
    assert state == PressureState()


def test_a_new_breach_during_the_cooldown_restarts_it():
    state = observe(PressureState(), 0.0, freed=1, episode=False, cooldown=COOLDOWN)
    assert state.calm_since == 0.0  # the eviction ended the episode at once
    state = observe(state, 50.0, freed=0, episode=True, cooldown=COOLDOWN)
    state = observe(state, 70.0, freed=0, episode=False, cooldown=COOLDOWN)
    assert state.under_pressure and state.calm_since == 70.0
    assert state.since == 0.0  # the pressure is still the one that began at 0


def test_zero_cooldown_clears_as_soon_as_the_episode_is_over():
    state = observe(PressureState(), 0.0, freed=1, episode=True, cooldown=0)
    assert observe(state, 1.0, freed=0, episode=False, cooldown=0) == PressureState()


def test_messages_name_the_phase():
    evicting = PressureState(since=0.0, freed=3)
    assert "3 pod(s)" in message(evicting, 60) and "still going on" in message(evicting, 60)
    cooling = PressureState(since=0.0, calm_since=5.0, freed=3)
    assert "clears 60 s after" in message(cooling, 60)
    assert message(PressureState(), 60) == "no pod evicted or killed in a recent episode"
