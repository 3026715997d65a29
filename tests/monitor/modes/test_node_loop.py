"""The node agent's side of the shared loop: a timer only where something must be polled."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from monitor_fakes import monitor_config

from oomguard.monitor.modes.node_loop import NodeLoop
from oomguard.monitor.triggers.factory import ThresholdConfig, UsageScope

EVENT_ONLY = monitor_config(event=True)
THRESHOLD = monitor_config(event=True, threshold=ThresholdConfig(100, 1.0))
HOST = monitor_config(event=True, host_memory=ThresholdConfig(100, 1.0, scope=UsageScope.HOST))


def agent(config, episode: bool):
    planner = SimpleNamespace(hold_triggers=lambda alive: episode)
    return SimpleNamespace(
        options=SimpleNamespace(tick_seconds=1.0),
        last=None,
        evictions=SimpleNamespace(planner=planner),
        monitors=SimpleNamespace(config=config),
    )


@pytest.mark.parametrize(
    ("config", "episode", "expected"),
    [
        (EVENT_ONLY, False, (None, False)),  # idle with event monitoring: no timer at all
        (EVENT_ONLY, True, (1.0, True)),  # an episode re-checks (pods going, kill fallback)
        (THRESHOLD, False, (1.0, False)),  # the tick is the threshold check
        (HOST, False, (1.0, False)),
        (None, False, (1.0, False)),  # a fixed monitor list: unknown, keep the tick
    ],
)
def test_the_tick_exists_only_with_a_polled_monitor_or_during_an_episode(config, episode, expected):
    assert NodeLoop(agent(config, episode)).wait_for() == expected
