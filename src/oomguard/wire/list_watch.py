"""List, then watch from that resourceVersion, reading the API's raw JSON (no model objects).

Every watcher in oomguard (this node's pods, this node's NodeMemoryReserve, the operator's
cluster-wide pod placements) talks to the API server the same way: a list whose body is read
as plain JSON, then a watch whose newline-delimited events are yielded as plain dicts. The
rules live here once: ``410 Gone`` (at the request or as an ERROR event) is
``WatchGoneError`` (relist), any other ERROR event is ``WatchError``, the connection always
goes back to the pool, and another thread can break a watch blocked reading (for shutdown).
What a listing or an event *means* stays with each watcher.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

GONE = 410


class WatchGoneError(Exception):
    """The resourceVersion we watch from is too old: relist."""


class WatchError(RuntimeError):
    """The watch stream reported an error other than 410 Gone."""


def list_json(
    call: Callable[..., Any], *args: Any, **kwargs: Any
) -> tuple[list[Mapping[str, Any]], str]:
    """A whole list (all pages, if ``limit`` is given): its items and resourceVersion."""
    items: list[Mapping[str, Any]] = []
    resource_version = ""
    for page, version in list_json_pages(call, *args, **kwargs):
        items.extend(page)
        resource_version = version
    return items, resource_version


def list_json_pages(
    call: Callable[..., Any], *args: Any, limit: int | None = None, **kwargs: Any
) -> Iterator[tuple[list[Mapping[str, Any]], str]]:
    """A list read page by page (``limit`` items each, following ``continue``; one request
    without ``limit``): each page's items and the list's resourceVersion. Only one page is in
    memory at once, for cluster-wide lists."""
    token: str | None = None
    while True:
        paging: dict[str, Any] = {} if limit is None else {"limit": limit}
        if token:
            paging["_continue"] = token
        body = _read_json(call(*args, _preload_content=False, **paging, **kwargs))
        metadata = body.get("metadata") or {}
        yield body.get("items") or [], metadata["resourceVersion"]
        token = metadata.get("continue")
        if not token:
            return


def check_event(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """The event itself, unless it is an ERROR event: those raise (pure)."""
    if event.get("type") != "ERROR":
        return event
    status = event.get("object")
    status = status if isinstance(status, Mapping) else {}
    if status.get("code") == GONE:
        raise WatchGoneError(str(status.get("message")))
    raise WatchError(f"watch error: {status.get('message', status)}")


def json_lines(response: Any) -> Iterator[str]:
    """Newline-delimited JSON from a streaming urllib3 response, each line as it arrives."""
    pending = b""
    for chunk in response.stream(amt=None, decode_content=True):
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if line.strip():
                yield line.decode("utf-8")
    if pending.strip():
        yield pending.decode("utf-8")


class WatchStream:
    """Opens watches one at a time and remembers the open one, so ``interrupt`` (from another
    thread) can break it."""

    def __init__(self, request_timeout: float = 10.0, *, read_slack: float | None = None) -> None:
        self._request_timeout = request_timeout
        # the read timeout is a safety net this far above the server-side watch timeout
        self._read_slack = request_timeout if read_slack is None else read_slack
        self._response: Any = None
        self._lock = threading.Lock()

    def events(
        self,
        call: Callable[..., Any],
        *args: Any,
        resource_version: str,
        timeout_seconds: int,
        **kwargs: Any,
    ) -> Iterator[Mapping[str, Any]]:
        """Raw watch events (``{"type": ..., "object": {...}}``, bookmarks included) until the
        server ends the watch."""
        from kubernetes.client.exceptions import ApiException

        try:
            response = call(
                *args,
                watch=True,
                allow_watch_bookmarks=True,
                resource_version=resource_version,
                timeout_seconds=timeout_seconds,
                _preload_content=False,
                _request_timeout=(self._request_timeout, timeout_seconds + self._read_slack),
                **kwargs,
            )
        except ApiException as exc:
            if exc.status == GONE:
                raise WatchGoneError(str(exc.reason)) from exc
            raise
        with self._lock:
            self._response = response
        try:
            for line in json_lines(response):
                yield check_event(json.loads(line))
        finally:
            with self._lock:
                self._response = None
            response.release_conn()

    def interrupt(self) -> None:
        """Unblocks a thread reading the watch: shut the socket down under it.

        ``response.close()`` from another thread would wait for the reader's lock on the TLS
        socket, i.e. until the next event or the watch's timeout.
        """
        with self._lock:
            response = self._response
        sock = getattr(getattr(response, "connection", None), "sock", None)
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _read_json(response: Any) -> Any:
    try:
        return json.loads(response.data)
    finally:
        response.release_conn()
