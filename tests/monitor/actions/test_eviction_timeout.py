"""The agent's eviction request outlasts the eviction webhook's timeout.

With failurePolicy Ignore the apiserver admits an eviction once the webhook times out; an agent
that gave up at that same moment would count the eviction as failed and act again.
"""

from pathlib import Path

import pytest
import yaml

from oomguard.cli import build_parser
from oomguard.monitor.actions.pod_evictor import EVICTION_REQUEST_TIMEOUT, KubernetesEvictionApi
from oomguard.monitor.modes import node_runtime
from oomguard.monitor.settings import default_node_settings

CHART_VALUES = Path(__file__).resolve().parents[3] / "helm" / "oomguard" / "values.yaml"


class RecordingCore:
    def __init__(self):
        self.timeouts = []
        self.bodies = []

    def create_namespaced_pod_eviction(self, name, namespace, body, _request_timeout):
        self.timeouts.append(_request_timeout)
        self.bodies.append(body)


def test_default_timeout_is_clearly_longer_than_the_charts_webhook_timeout():
    webhook = yaml.safe_load(CHART_VALUES.read_text())["evictionWebhook"]["timeoutSeconds"]
    assert webhook + 5 <= EVICTION_REQUEST_TIMEOUT
    core = RecordingCore()
    assert KubernetesEvictionApi(core).evict("apps", "web-1", 30) == 201
    assert core.timeouts == [EVICTION_REQUEST_TIMEOUT]


def test_eviction_timeout_flag_reaches_the_eviction_requests(monkeypatch):
    args = build_parser().parse_args(["monitor", "--eviction-timeout", "40"])
    assert args.eviction_timeout == 40.0
    assert build_parser().parse_args(["monitor"]).eviction_timeout == EVICTION_REQUEST_TIMEOUT

    class Built(Exception):
        pass

    seen = []

    def eviction_api(core, request_timeout):
        seen.append(request_timeout)
        raise Built

    monkeypatch.setattr(node_runtime, "KubernetesEvictionApi", eviction_api)
    settings = default_node_settings("node-a", 8 * 2**30)
    with pytest.raises(Built):
        node_runtime.build_agent(RecordingCore(), None, settings, eviction_timeout=40.0)
    assert seen == [40.0]


def test_the_eviction_request_carries_the_pods_uid_as_a_precondition():
    core = RecordingCore()
    assert KubernetesEvictionApi(core).evict("apps", "web-1", 30, uid="u-1") == 201
    assert core.bodies[0]["deleteOptions"] == {
        "gracePeriodSeconds": 30,
        "preconditions": {"uid": "u-1"},
    }
