"""``/metrics`` (and ``/healthz``) for `oomguard guard --metrics-port`, for as long as it guards.

The node agent already runs :class:`HttpEndpoints` for its probes and only adds the route;
the guard has no server of its own, so this starts one when a port is asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from oomguard.monitor.feedback.http_endpoints import HttpEndpoints
from oomguard.monitor.feedback.logs import log_event
from oomguard.monitor.feedback.metrics_registry import GuardMetrics

log = logging.getLogger("oomguard.metrics")


class MetricsEndpointError(RuntimeError):
    """The metrics server could not listen where it was asked to (port taken, bad address)."""


@contextmanager
def metrics_endpoint(metrics: GuardMetrics, host: str, port: int) -> Iterator[HttpEndpoints | None]:
    """Serve ``metrics`` on ``http://host:port/metrics`` inside the ``with``; port 0 = off."""
    if not port:
        yield None
        return
    try:
        http = HttpEndpoints(host, port)
    except OSError as exc:
        raise MetricsEndpointError(
            f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}"
        ) from exc
    http.add_route("/metrics", metrics.route)
    http.add_check("/healthz", lambda: (True, "ok"))
    http.start()
    log_event(log, logging.INFO, "serving metrics", url=f"http://{host}:{http.port}/metrics")
    try:
        yield http
    finally:
        http.stop()
