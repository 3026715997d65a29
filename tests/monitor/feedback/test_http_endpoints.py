import urllib.error
import urllib.request

import pytest
from monitor_fakes import RecordingPoller

from oomguard.monitor.feedback.http_endpoints import HttpEndpoints


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture
def server():
    s = HttpEndpoints("127.0.0.1", 0)
    s.start()
    yield s
    s.stop()


def test_checks_and_routes(server):
    state = {"ready": False}
    server.add_check("/healthz", lambda: (True, ""))
    server.add_check(
        "/readyz", lambda: (state["ready"], "" if state["ready"] else "pods not listed")
    )
    server.add_route("/metrics", lambda: (200, "text/plain", b"x 1\n"))
    assert get(server.port, "/healthz") == (200, b"ok\n")
    assert get(server.port, "/readyz") == (503, b"pods not listed\n")
    state["ready"] = True
    assert get(server.port, "/readyz") == (200, b"ok\n")
    assert get(server.port, "/metrics") == (200, b"x 1\n")
    assert get(server.port, "/nope")[0] == 404


def test_broken_check_answers_500(server):
    def broken():
        raise RuntimeError("boom")

    server.add_check("/readyz", broken)
    assert get(server.port, "/readyz") == (500, b"boom\n")


def _closed_by_server(sock, bound=10.0):
    """True when the server closes ``sock`` within ``bound`` seconds without an answer."""
    sock.settimeout(bound)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_a_client_that_sends_nothing_is_dropped():
    """Item 8 of "do no harm": no client can hold one of the agent's threads for ever."""
    import socket

    s = HttpEndpoints("127.0.0.1", 0, request_timeout=0.2)
    s.start()
    try:
        with socket.create_connection(("127.0.0.1", s.port)) as idle:
            assert _closed_by_server(idle)
    finally:
        s.stop()


def test_connections_beyond_the_bound_are_closed_and_the_server_recovers():
    import socket
    import time

    s = HttpEndpoints("127.0.0.1", 0, request_timeout=60, max_connections=2)
    s.add_route("/x", lambda: (200, "text/plain", b"x\n"))
    s.start()
    try:
        idle = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(2)]
        with socket.create_connection(("127.0.0.1", s.port)) as third:
            assert _closed_by_server(third)  # served after the two: no slot left
        for sock in idle:
            sock.close()
        deadline = time.monotonic() + 30  # the two threads see their close and free slots
        while True:
            try:
                assert get(s.port, "/x") == (200, b"x\n")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise
    finally:
        s.stop()


def test_a_local_only_route_is_refused_to_clients_outside_the_pod():
    """Item 8 of "do no harm": /status (pod names, decisions) is not served to the cluster."""
    clients = []

    def outside(host):
        clients.append(host)
        return False

    s = HttpEndpoints("127.0.0.1", 0, is_local=outside)
    s.add_route("/status", lambda: (200, "application/json", b"{}"), local_only=True)
    s.add_route("/metrics", lambda: (200, "text/plain", b"x 1\n"))
    s.start()
    try:
        status, body = get(s.port, "/status")
        assert status == 403 and b"oomguard status" in body
        assert get(s.port, "/metrics") == (200, b"x 1\n")
        assert clients == ["127.0.0.1"]
    finally:
        s.stop()


def test_loopback_clients_get_a_local_only_route(server):
    server.add_route("/status", lambda: (200, "application/json", b"{}"), local_only=True)
    assert get(server.port, "/status") == (200, b"{}")


@pytest.mark.parametrize(
    ("host", "local"), [("127.0.0.1", True), ("::1", True), ("10.0.0.7", False), ("x", False)]
)
def test_loopback_is_told_from_the_network(host, local):
    from oomguard.monitor.feedback.http_endpoints import is_loopback

    assert is_loopback(host) is local


def test_the_server_thread_sleeps_without_a_timeout_and_stops_at_once():
    """No periodic wake-up: the serving thread polls the socket and its stop signal only."""
    recording = RecordingPoller()

    s = HttpEndpoints("127.0.0.1", 0)
    s.poller = lambda: recording
    s.add_route("/metrics", lambda: (200, "text/plain", b"x 1\n"))
    s.start()
    try:
        assert get(s.port, "/metrics") == (200, b"x 1\n")
        assert get(s.port, "/metrics") == (200, b"x 1\n")
    finally:
        s.stop()
    assert s._thread is not None and not s._thread.is_alive()
    assert recording.timeouts and set(recording.timeouts) == {None}


def test_a_client_gone_before_its_answer_is_a_debug_line_not_a_traceback(caplog, capfd):
    """A scrape that timed out closes its connection while /metrics is still rendering."""
    import logging
    import socket
    import threading

    from monitor_fakes import wait_for

    client_gone = threading.Event()

    def slow_metrics():
        client_gone.wait(60)
        return 200, "text/plain", b"x" * (8 << 20)  # far more than the socket buffers hold

    s = HttpEndpoints("127.0.0.1", 0)
    s.add_route("/metrics", slow_metrics)
    s.start()
    caplog.set_level(logging.DEBUG, logger="oomguard.monitor.feedback.http_endpoints")
    try:
        with socket.create_connection(("127.0.0.1", s.port)) as scrape:
            scrape.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        client_gone.set()
        assert wait_for(lambda: "before its answer" in caplog.text)
        assert get(s.port, "/nope")[0] == 404  # and the server goes on
    finally:
        s.stop()
    assert "Traceback" not in capfd.readouterr().err
