"""The agent's reserve, line, target, dry run and settings source as scrape-time series."""

import dataclasses

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from oomguard.monitor.feedback.node_state_collector import NodeStateCollector
from oomguard.monitor.kube.node_reserve import ReserveState
from oomguard.wire.node_settings import default_node_settings

GIB = 2**30


class FakeAgent:
    def __init__(self, settings, state=None, limit=None):
        self.settings = settings
        self.reserve_state = state
        self._limit = limit

    def limit_bytes(self):
        if self._limit is None:
            raise OSError("memory.max unreadable")
        return self._limit

    def target_bytes(self):
        return self.limit_bytes() * 9 // 10


def scrape(agent):
    registry = CollectorRegistry()
    registry.register(NodeStateCollector(agent))
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(generate_latest(registry).decode())
        for s in f.samples
    }


def test_policy_settings_are_reported_with_their_generation():
    settings = dataclasses.replace(
        default_node_settings("node-a", 16 * GIB), source_policy="big-nodes", dry_run=True
    )
    samples = scrape(FakeAgent(settings, ReserveState(settings, generation=7), limit=14 * GIB))
    assert samples[("oomguard_reserve_bytes", ())] == settings.reserve_bytes
    assert samples[("oomguard_limit_bytes", ())] == 14 * GIB
    assert samples[("oomguard_target_bytes", ())] == 14 * GIB * 9 // 10
    assert samples[("oomguard_dry_run", ())] == 1
    labels = (("generation", "7"), ("policy", "big-nodes"), ("source", "policy"))
    assert samples[("oomguard_reserve_info", labels)] == 1


def test_fallback_settings_and_an_unreadable_limit_never_fail_the_scrape():
    settings = default_node_settings("node-a", 16 * GIB)
    samples = scrape(FakeAgent(settings))
    assert samples[("oomguard_dry_run", ())] == 0
    assert (
        samples[
            ("oomguard_reserve_info", (("generation", ""), ("policy", ""), ("source", "fallback")))
        ]
        == 1
    )
    assert ("oomguard_limit_bytes", ()) not in samples
    assert ("oomguard_target_bytes", ()) not in samples
