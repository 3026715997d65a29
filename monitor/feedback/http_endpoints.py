"""The agent's small HTTP server: ``/healthz`` and ``/readyz`` now, ``/metrics`` added later.

A ThreadingHTTPServer in a daemon thread; routes are plain callables returning
(status, content type, body), so another module adds ``/metrics`` with one ``add_route``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)

Response = tuple[int, str, bytes]
Route = Callable[[], Response]
Check = Callable[[], tuple[bool, str]]

# The agent's port, here alone: `--http-port`, `oomguard status` and the chart's `agent.port`
# (a test holds the chart to it) all take it from here, so `kubectl exec ... oomguard status`
# finds the agent without `--url`.
AGENT_PORT = 9610


def check_route(check: Check) -> Route:
    """A route answering 200 ``ok`` or 503 with the reason the check gives."""

    def route() -> Response:
        ok, reason = check()
        return (200 if ok else 503), "text/plain; charset=utf-8", (reason or "ok").encode() + b"\n"

    return route


class HttpEndpoints:
    def __init__(self, host: str = "0.0.0.0", port: int = AGENT_PORT) -> None:  # noqa: S104 - a pod port
        self._routes: dict[str, Route] = {}
        routes = self._routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes.get(self.path.split("?", 1)[0])
                if route is None:
                    status, ctype, body = 404, "text/plain", b"not found\n"
                else:
                    try:
                        status, ctype, body = route()
                    except Exception as exc:  # a broken check must not kill the server
                        status, ctype, body = 500, "text/plain", f"{exc}\n".encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("http: " + format, *args)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def add_route(self, path: str, route: Route) -> None:
        self._routes[path] = route

    def add_check(self, path: str, check: Check) -> None:
        self.add_route(path, check_route(check))

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="http-endpoints", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
