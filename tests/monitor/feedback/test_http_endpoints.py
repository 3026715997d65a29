import urllib.error
import urllib.request

import pytest

from oomguard.monitor.feedback.http_endpoints import HttpEndpoints


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
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
