"""The agent's small HTTP server: ``/healthz`` and ``/readyz`` now, ``/metrics`` added later.

A ThreadingHTTPServer in a daemon thread; routes are plain callables returning
(status, content type, body), so another module adds ``/metrics`` with one ``add_route``.
Bounded so that no client can tie the agent up: a connection that sends nothing is closed
after ``request_timeout``, and at most ``max_connections`` are served at once (more are
closed at once, never queued into threads). The thread sleeps in ``poll()`` on the
listening socket and a :class:`StopSignal`, with no timeout (``serve_forever`` would wake
every 0.5 s to look for a shutdown request).
"""

from __future__ import annotations

import ipaddress
import logging
import select
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from oomguard.monitor.runtime.poller import PollerFactory, new_poller
from oomguard.monitor.runtime.stop_signal import StopSignal

log = logging.getLogger(__name__)

Response = tuple[int, str, bytes]
Route = Callable[[], Response]
Check = Callable[[], tuple[bool, str]]

# The agent's port, here alone: `--http-port`, `oomguard status` and the chart's `agent.port`
# (a test holds the chart to it) all take it from here, so `kubectl exec ... oomguard status`
# finds the agent without `--url`.
AGENT_PORT = 9610
REQUEST_TIMEOUT = 5.0  # seconds a connection may take to send its request
MAX_CONNECTIONS = 8  # served at once; a probe, a scrape and `oomguard status` need three


LOCAL_ONLY_MESSAGE = (
    b"served only inside the pod: kubectl exec ... -- oomguard status "
    b"(agent.serveStatusToCluster)\n"
)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class BoundedHTTPServer(ThreadingHTTPServer):
    """One thread per connection, at most ``max_connections`` threads."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        max_connections: int,
    ) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("http: all connections busy; closing one from %s", client_address)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client gone before its answer was written (a scrape that timed out) is routine:
        one debug line, not socketserver's traceback on stderr for each."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):  # broken pipe, reset, aborted
            log.debug("http: %s went away before its answer: %s", client_address, error)
            return
        log.warning("http: error answering %s", client_address, exc_info=True)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def check_route(check: Check) -> Route:
    """A route answering 200 ``ok`` or 503 with the reason the check gives."""

    def route() -> Response:
        ok, reason = check()
        return (200 if ok else 503), "text/plain; charset=utf-8", (reason or "ok").encode() + b"\n"

    return route


class HttpEndpoints:
    def __init__(
        self,
        host: str = "0.0.0.0",  # noqa: S104 - a pod port
        port: int = AGENT_PORT,
        request_timeout: float = REQUEST_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        is_local: Callable[[str], bool] = is_loopback,
    ) -> None:
        self._routes: dict[str, Route] = {}
        self._local_only: set[str] = set()
        routes, local_only = self._routes, self._local_only

        class Handler(BaseHTTPRequestHandler):
            timeout = request_timeout  # on the socket: a silent client is dropped

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                route = routes.get(path)
                if route is None:
                    status, ctype, body = 404, "text/plain", b"not found\n"
                elif path in local_only and not is_local(self.client_address[0]):
                    status, ctype, body = 403, "text/plain", LOCAL_ONLY_MESSAGE
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

        self._server = BoundedHTTPServer((host, port), Handler, max_connections)
        # handle_request() after poll() said the socket is readable: never block in it
        self._server.timeout = 0
        self._stop = StopSignal()
        self.poller: PollerFactory = new_poller  # a test swaps in a recorder before start()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def add_route(self, path: str, route: Route, *, local_only: bool = False) -> None:
        """``local_only``: answered only to clients inside the pod (loopback), 403 to others."""
        self._routes[path] = route
        if local_only:
            self._local_only.add(path)
        else:
            self._local_only.discard(path)

    def add_check(self, path: str, check: Check) -> None:
        self.add_route(path, check_route(check))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="http-endpoints", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        poll = self.poller()
        poll.register(self._server.fileno(), select.POLLIN)
        poll.register(self._stop.fileno(), select.POLLIN)
        while not self._stop.is_set():
            ready = [fd for fd, _ in poll.poll()]
            if self._stop.fileno() in ready:
                return
            self._server.handle_request()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._server.server_close()
        if self._thread is None or not self._thread.is_alive():
            self._stop.close()
