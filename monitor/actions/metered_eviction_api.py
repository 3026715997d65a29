"""An :class:`EvictionApi` that reports every request's answer and how long it took, for the
API health metrics (``feedback/api_health_metrics.py``); the evictor above it is unchanged."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from oomguard.monitor.actions.pod_evictor import (
    TOO_MANY_REQUESTS,
    ApiThrottledError,
    ApiUnreachableError,
    EvictionApi,
)

UNREACHABLE = "unreachable"
"""The ``code`` of a request that got no HTTP answer (connection refused, timeout, DNS)."""


class RequestSink(Protocol):
    def eviction_request(self, code: str, seconds: float) -> None:
        """One eviction request ended: its HTTP status (``"201"``, ``"429"``...) or
        ``unreachable``, after ``seconds``."""


class MeteredEvictionApi:
    def __init__(
        self,
        api: EvictionApi,
        sink: RequestSink,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._sink = sink
        self._clock = clock

    def evict(
        self, namespace: str, name: str, grace_period_seconds: int, uid: str | None = None
    ) -> int:
        started = self._clock()
        code = UNREACHABLE
        try:
            status = self._api.evict(namespace, name, grace_period_seconds, uid)
            code = str(status)
            return status
        except ApiThrottledError:
            code = str(TOO_MANY_REQUESTS)
            raise
        except ApiUnreachableError:
            code = UNREACHABLE
            raise
        finally:
            self._sink.eviction_request(code, max(0.0, self._clock() - started))
