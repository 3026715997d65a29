"""The HTTPS adapter over a fake placement source: TLS, lookups, GET fallback, 400s, health."""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
import threading
import time

import aiohttp
import pytest
from test_eviction_decision import AGENT, review

from oomguard.operator.webhook import serving_cert
from oomguard.operator.webhook.eviction_decision import PodPlacement
from oomguard.operator.webhook.webhook_server import (
    LISTEN_BACKLOG,
    REVIEW_PATH,
    EvictionWebhook,
    WebhookServer,
)


class FakePlacements:
    def __init__(self, cached=None, remote=None, fetch_error=None, fetch_delay=0.0):
        self.cached = dict(cached or {})
        self.remote = dict(remote or {})
        self.fetch_error = fetch_error
        self.fetch_delay = fetch_delay
        self.fetches = []
        self.synced = threading.Event()

    def get(self, namespace, name):
        return self.cached.get((namespace, name))

    def fetch(self, namespace, name):
        self.fetches.append((namespace, name))
        time.sleep(self.fetch_delay)
        if self.fetch_error:
            raise self.fetch_error
        return self.remote.get((namespace, name))

    def __len__(self):
        return len(self.cached)


def serve(placements, calls, fetch_timeout=2.0):
    """Serves on a free port, runs `calls(session, base_url)`; returns (webhook, result)."""
    cert = serving_cert.generate(["127.0.0.1"])
    client_ctx = ssl.create_default_context(cadata=cert.ca_pem.decode())
    webhook = EvictionWebhook(placements, [AGENT], fetch_timeout=fetch_timeout)

    async def main():
        server = WebhookServer(webhook, "127.0.0.1", 0, serving_cert.ssl_context(cert))
        await server.start()
        try:
            connector = aiohttp.TCPConnector(ssl=client_ctx)
            async with aiohttp.ClientSession(connector=connector) as session:
                return await calls(session, f"https://127.0.0.1:{server.port}")
        finally:
            await server.stop()

    return webhook, asyncio.run(main())


async def post(session, base, body):
    async with session.post(base + REVIEW_PATH, json=body) as response:
        return response.status, await response.json()


ON_A = PodPlacement("pod-uid", "node-a")
ON_B = PodPlacement("pod-uid", "node-b")


def test_cached_pods_decide_without_a_get():
    placements = FakePlacements(cached={("shop", "web-1"): ON_A, ("shop", "web-2"): ON_B})

    async def calls(session, base):
        return [
            await post(session, base, review(name="web-1")),
            await post(session, base, review(name="web-2")),
        ]

    webhook, [(s1, own), (s2, other)] = serve(placements, calls)
    assert (s1, own["response"]["allowed"], own["response"]["uid"]) == (200, True, "req-1")
    assert (s2, other["response"]["allowed"]) == (200, False)
    assert other["response"]["status"]["code"] == 403
    assert "runs on node node-b" in other["response"]["status"]["message"]
    assert placements.fetches == []
    assert [reason for reason, _ in webhook.timings] == ["own-node", "other-node"]
    assert all(seconds >= 0 for _, seconds in webhook.timings)
    sample = webhook.metrics.registry.get_sample_value
    assert (
        sample(
            "oomguard_operator_webhook_reviews_total", {"allowed": "false", "reason": "other-node"}
        )
        == 1
    )


@pytest.mark.parametrize(
    ("remote", "error", "delay", "allowed", "miss"),
    [
        ({("shop", "web-1"): ON_A}, None, 0.0, True, "found"),
        ({("shop", "web-1"): ON_B}, None, 0.0, False, "found"),
        ({}, None, 0.0, False, "not-found"),
        ({}, RuntimeError("apiserver down"), 0.0, False, "error"),
        ({("shop", "web-1"): ON_A}, None, 1.0, False, "error"),  # slower than fetch_timeout
    ],
)
def test_cache_miss_falls_back_to_one_get(remote, error, delay, allowed, miss):
    placements = FakePlacements(remote=remote, fetch_error=error, fetch_delay=delay)

    async def calls(session, base):
        return await post(session, base, review())

    webhook, (status, body) = serve(placements, calls, fetch_timeout=0.3)
    assert status == 200
    assert body["response"]["allowed"] is allowed
    assert placements.fetches == [("shop", "web-1")]
    sample = webhook.metrics.registry.get_sample_value
    assert sample("oomguard_operator_webhook_cache_misses_total", {"result": miss}) == 1


def test_stale_cache_entry_with_another_uid_is_looked_up_again():
    placements = FakePlacements(
        cached={("shop", "web-1"): PodPlacement("old", "node-a")},
        remote={("shop", "web-1"): PodPlacement("new", "node-b")},
    )

    async def calls(session, base):
        return await post(session, base, review(uid_precondition="new"))

    _, (_, body) = serve(placements, calls)
    assert body["response"]["allowed"] is False
    assert "runs on node node-b" in body["response"]["status"]["message"]


def test_other_users_never_cause_a_lookup():
    placements = FakePlacements()

    async def calls(session, base):
        return await post(session, base, review(username="admin", node=None))

    _, (_, body) = serve(placements, calls)
    assert body["response"]["allowed"] is True
    assert placements.fetches == []


def test_bad_requests_get_400_and_health_follows_the_cache():
    placements = FakePlacements()

    async def calls(session, base):
        async with session.post(base + REVIEW_PATH, data=b"not json") as bad_json:
            first = bad_json.status
        async with session.post(base + REVIEW_PATH, json={"kind": "Pod"}) as bad_kind:
            second = bad_kind.status
        async with session.get(base + "/healthz") as before:
            unsynced = before.status
        placements.synced.set()
        async with session.get(base + "/healthz") as after:
            synced = after.status
        return first, second, unsynced, synced

    webhook, result = serve(placements, calls)
    assert result == (400, 400, 503, 200)
    assert webhook.metrics.registry.get_sample_value("oomguard_operator_webhook_errors_total") == 2


def connected_while_stalled(backlog: int, connections: int, wait: float) -> int:
    """How many of ``connections`` TCP connects complete while the server's event loop is
    stalled (as in a storm, busy with other handshakes): only the kernel's accept queue,
    sized by the listen backlog, can take them. Waits until all are connected or ``wait``."""
    cert = serving_cert.generate(["127.0.0.1"])
    webhook = EvictionWebhook(FakePlacements(), [AGENT])
    server = WebhookServer(webhook, "127.0.0.1", 0, serving_cert.ssl_context(cert), backlog=backlog)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    stalled, release = threading.Event(), threading.Event()

    def stall() -> None:  # the loop accepts nothing until released
        stalled.set()
        release.wait()

    loop.call_soon_threadsafe(stall)
    assert stalled.wait(10), "the event loop did not take the stall"
    sockets = [socket.socket() for _ in range(connections)]
    try:
        poller = select.poll()
        for sock in sockets:
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", server.port))
            poller.register(sock, select.POLLOUT)
        connected: set[int] = set()
        deadline = time.monotonic() + wait
        while len(connected) < connections and time.monotonic() < deadline:
            for fd, _ in poller.poll(100):
                poller.unregister(fd)
                connected.add(fd)
        return sum(
            1
            for sock in sockets
            if sock.fileno() in connected
            and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        )
    finally:
        release.set()
        for sock in sockets:
            sock.close()
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_a_burst_of_connections_waits_in_the_queue_while_the_loop_is_busy():
    """500 agents evicting at once make the apiserver open hundreds of connections to the
    webhook together; none may be dropped (a dropped SYN is retried only after 1 s, 3 s ...
    and under failurePolicy Ignore a timed-out review lets the eviction past the cap)."""
    assert connected_while_stalled(LISTEN_BACKLOG, 600, wait=30) == 600


def test_the_burst_check_sees_a_short_queue_drop_connections():
    """The control: with aiohttp's old default of 128 the same burst does not all get in."""
    assert connected_while_stalled(128, 600, wait=3) < 600
