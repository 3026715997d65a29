"""The API health series: eviction requests by code and their latency, watch restarts by
reason, and each watch's last success as a timestamp that starts at the agent's start."""

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from oomguard.monitor.feedback.api_health_metrics import ApiHealthMetrics
from oomguard.monitor.feedback.metrics_registry import GuardMetrics
from oomguard.monitor.kube.watch_health import WatchName, WatchRestart


def test_series_exist_from_the_start_and_move_with_what_happens():
    registry = CollectorRegistry()
    now = [1_000.0]
    metrics = ApiHealthMetrics(registry, [WatchName.PODS], wall_clock=lambda: now[0])

    def value(name, **labels):
        return registry.get_sample_value(name, labels)

    for code in ("201", "404", "429"):
        assert value("oomguard_eviction_api_requests_total", code=code) == 0
    for reason in WatchRestart:
        assert value("oomguard_watch_restarts_total", watch="pods", reason=reason.value) == 0
    assert value("oomguard_watch_last_success_timestamp_seconds", watch="pods") == 1_000.0
    # a watch this agent does not run has no series
    assert value("oomguard_watch_last_success_timestamp_seconds", watch="reserve") is None

    metrics.eviction_request("201", 0.04)
    metrics.eviction_request("unreachable", 15.0)
    metrics.eviction_request("503", 0.2)
    assert value("oomguard_eviction_api_requests_total", code="201") == 1
    assert value("oomguard_eviction_api_requests_total", code="unreachable") == 1
    assert value("oomguard_eviction_api_requests_total", code="503") == 1
    assert value("oomguard_eviction_api_request_duration_seconds_count") == 3
    assert value("oomguard_eviction_api_request_duration_seconds_bucket", le="0.05") == 1
    assert value("oomguard_eviction_api_request_duration_seconds_bucket", le="10.0") == 2

    now[0] = 1_060.0
    metrics.succeeded(WatchName.PODS)
    metrics.restarted(WatchName.PODS, WatchRestart.EXPIRED)
    metrics.restarted(WatchName.PODS, WatchRestart.ERROR)
    metrics.restarted(WatchName.PODS, WatchRestart.ERROR)
    assert value("oomguard_watch_last_success_timestamp_seconds", watch="pods") == 1_060.0
    assert value("oomguard_watch_restarts_total", watch="pods", reason="expired") == 1
    assert value("oomguard_watch_restarts_total", watch="pods", reason="error") == 2


def test_the_agents_exposition_carries_them_without_created_series():
    guard = GuardMetrics("node", None)
    ApiHealthMetrics(guard.registry, list(WatchName), wall_clock=lambda: 5.0)
    text = guard.exposition().decode()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {
        "oomguard_eviction_api_requests",
        "oomguard_eviction_api_request_duration_seconds",
        "oomguard_watch_restarts",
        "oomguard_watch_last_success_timestamp_seconds",
        "oomguard_episode_duration_seconds",
    } <= names
    assert "_created" not in text
