"""The HTTPS endpoint the apiserver calls: aiohttp in the operator's event loop.

``POST /validate-eviction`` takes an AdmissionReview, looks the target pod up in the
watch-backed cache (one GET to the apiserver on a miss, bounded by ``fetch_timeout``) and
answers with the pure decision. ``GET /healthz`` answers 200 once the cache has listed all pods.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import ssl
import time
from collections.abc import Callable, Collection
from typing import Any, Protocol

from aiohttp import web

from oomguard.operator.webhook.eviction_cap import EvictionCap
from oomguard.operator.webhook.eviction_decision import (
    EvictionRequest,
    MalformedReview,
    PodPlacement,
    Reason,
    Verdict,
    capped,
    decide,
    needs_pod,
    read_request,
    review_response,
)
from oomguard.operator.webhook.webhook_metrics import WebhookMetrics

logger = logging.getLogger(__name__)

REVIEW_PATH = "/validate-eviction"
# Connections the kernel queues while the event loop is busy. In an eviction storm the
# apiserver opens one connection per concurrent review (hundreds at once); past the queue
# the kernel drops their SYNs, the apiserver's dial retries after 1, 3, 7 s and its call
# can outlast the webhook's timeoutSeconds, which under failurePolicy Ignore lets the
# eviction through uncounted by the cap. aiohttp's default is 128; the kernel clamps this
# to net.core.somaxconn (4096 by default since Linux 5.4).
LISTEN_BACKLOG = 2048


class PlacementSource(Protocol):
    def get(self, namespace: str, name: str) -> PodPlacement | None: ...

    def fetch(self, namespace: str, name: str) -> PodPlacement | None: ...

    def __len__(self) -> int: ...

    @property
    def synced(self) -> Any: ...  # threading.Event-like: is_set()


class EvictionWebhook:
    """Turns AdmissionReviews into verdicts; keeps the last server-side timings for benches."""

    def __init__(
        self,
        placements: PlacementSource,
        agent_usernames: Collection[str],
        metrics: WebhookMetrics | None = None,
        *,
        fetch_timeout: float = 2.0,
        keep_timings: int = 10_000,
        cap: EvictionCap | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``cap``: the cluster-wide bound on the agents' own-node evictions (None: none)."""
        self.placements = placements
        self.cap = cap
        self._clock = clock
        self.agent_usernames = frozenset(agent_usernames)
        self.metrics = metrics or WebhookMetrics()
        self.fetch_timeout = fetch_timeout
        self.timings: collections.deque[tuple[str, float]] = collections.deque(
            maxlen=keep_timings
        )  # (reason, seconds) per answered review

    async def placement(self, request: EvictionRequest) -> PodPlacement | None:
        cached = self.placements.get(request.namespace, request.pod_name)
        stale = (
            cached is not None
            and request.precondition_uid is not None
            and request.precondition_uid != cached.uid
        )
        if cached is not None and not stale:
            return cached
        try:
            found = await asyncio.wait_for(
                asyncio.to_thread(self.placements.fetch, request.namespace, request.pod_name),
                self.fetch_timeout,
            )
        except Exception as exc:  # the GET fallback failed: the pod stays unknown (denied)
            logger.warning(
                "pod %s/%s: not cached and the GET failed: %r",
                request.namespace,
                request.pod_name,
                exc,
            )
            self.metrics.cache_misses.labels("error").inc()
            return None
        self.metrics.cache_misses.labels("found" if found else "not-found").inc()
        return found

    async def review(self, body: Any) -> tuple[dict[str, Any], Verdict]:
        request = read_request(body)
        placement = None
        if needs_pod(request, self.agent_usernames):
            placement = await self.placement(request)
        verdict = decide(request, placement, self.agent_usernames)
        if verdict.reason is Reason.OWN_NODE and self.cap is not None:
            wait = self.cap.admit(self._clock())
            if wait is not None:
                cap = self.cap
                verdict = capped(request, wait, cap.max_evictions, cap.window_seconds)
        return review_response(request.uid, verdict), verdict

    async def handle_review(self, http: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            body = json.loads(await http.read())
            answer, verdict = await self.review(body)
        except (ValueError, MalformedReview) as exc:
            self.metrics.errors.inc()
            return web.json_response({"error": str(exc)}, status=400)
        elapsed = time.perf_counter() - started
        self.metrics.duration.observe(elapsed)
        self.metrics.reviews.labels(str(verdict.allowed).lower(), verdict.reason.value).inc()
        self.metrics.cached_pods.set(len(self.placements))
        self.timings.append((verdict.reason.value, elapsed))
        if not verdict.allowed:
            logger.warning("denied eviction: %s", verdict.message)
        return web.json_response(answer)

    async def handle_health(self, _: web.Request) -> web.Response:
        if not self.placements.synced.is_set():
            return web.Response(status=503, text="pod cache not synced\n")
        return web.Response(text="ok\n")

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_post(REVIEW_PATH, self.handle_review)
        app.router.add_get("/healthz", self.handle_health)
        return app


class WebhookServer:
    """The aiohttp site on ``host:port`` with TLS; ``port`` after start is the bound port."""

    def __init__(
        self,
        webhook: EvictionWebhook,
        host: str,
        port: int,
        context: ssl.SSLContext,
        *,
        backlog: int = LISTEN_BACKLOG,
    ) -> None:
        self.webhook = webhook
        self.host = host
        self.port = port
        self.backlog = backlog
        self._context = context
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.webhook.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.host, self.port, ssl_context=self._context, backlog=self.backlog
        )
        await site.start()
        server: Any = site._server  # the bound port when asked for port 0
        if server is not None and getattr(server, "sockets", None):
            self.port = int(server.sockets[0].getsockname()[1])
        logger.info(
            "eviction webhook listening on https://%s:%d%s", self.host, self.port, REVIEW_PATH
        )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
