"""The node agent's view of its API server, as Prometheus metrics: each eviction request's
answer and latency, and each watch's restarts and the last time it heard from the server.

Registered next to :class:`GuardMetrics` in the agent's registry (only the node agent talks
to an API server). Labels are closed sets: ``watch`` and ``reason`` are enums, ``code`` is an
HTTP status (the few the Eviction API answers) or ``unreachable``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from oomguard.monitor.kube.watch_health import WatchName, WatchRestart

PREFIX = "oomguard"

# The request timeout is the webhook's timeoutSeconds + 10 s (15 s with the chart's defaults).
REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)

# The codes every agent's series start with, at 0, so rate() sees the first one.
COMMON_CODES = ("201", "404", "429")


class ApiHealthMetrics:
    """Implements ``RequestSink`` (the metered Eviction API) and ``WatchHealth`` (the
    watches) in ``registry``. ``watches``: those this agent runs; their last-success time
    starts at the agent's start, so a watch that never succeeds ages like one that stopped."""

    def __init__(
        self,
        registry: CollectorRegistry,
        watches: Iterable[WatchName],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._wall_clock = wall_clock
        self.requests = Counter(
            f"{PREFIX}_eviction_api_requests",
            "Eviction API requests by answer: the HTTP status, or unreachable (no answer).",
            ["code"],
            registry=registry,
        )
        self.request_duration = Histogram(
            f"{PREFIX}_eviction_api_request_duration_seconds",
            "Seconds an Eviction API request took, answered or not.",
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.watch_restarts = Counter(
            f"{PREFIX}_watch_restarts",
            "Times a watch started over with a new list: expired (410 Gone) or error "
            "(the list or watch failed; retried with backoff).",
            ["watch", "reason"],
            registry=registry,
        )
        self.watch_last_success = Gauge(
            f"{PREFIX}_watch_last_success_timestamp_seconds",
            "When a watch last heard from the API server (a list, an event or bookmark, a "
            "watch the server ended), in seconds since the epoch; the agent's start until then.",
            ["watch"],
            registry=registry,
        )
        for code in COMMON_CODES:
            self.requests.labels(code=code)
        started = wall_clock()
        for watch in watches:
            self.watch_last_success.labels(watch=watch.value).set(started)
            for reason in WatchRestart:
                self.watch_restarts.labels(watch=watch.value, reason=reason.value)

    def eviction_request(self, code: str, seconds: float) -> None:
        self.requests.labels(code=code).inc()
        self.request_duration.observe(max(0.0, seconds))

    def succeeded(self, watch: WatchName) -> None:
        self.watch_last_success.labels(watch=watch.value).set(self._wall_clock())

    def restarted(self, watch: WatchName, reason: WatchRestart) -> None:
        self.watch_restarts.labels(watch=watch.value, reason=reason.value).inc()
