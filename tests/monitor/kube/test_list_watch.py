"""The shared list+watch mechanism over fake API calls and fake streaming responses."""

from __future__ import annotations

import json
import socket

import pytest
from kubernetes.client.exceptions import ApiException

from oomguard.monitor.kube.list_watch import (
    WatchError,
    WatchGoneError,
    WatchStream,
    check_event,
    json_lines,
    list_json,
    list_json_pages,
)


class FakeStream:
    def __init__(self, chunks):
        self.chunks = chunks

    def stream(self, amt=None, decode_content=False):
        yield from self.chunks


class FakeSocket:
    def __init__(self):
        self.shut = []

    def shutdown(self, how):
        self.shut.append(how)


class FakeConnection:
    def __init__(self):
        self.sock = FakeSocket()


class FakeResponse:
    def __init__(self, data=b"", chunks=()):
        self.data = data
        self.chunks = list(chunks)
        self.released = 0
        self.connection = FakeConnection()

    def stream(self, amt=None, decode_content=False):
        yield from self.chunks

    def release_conn(self):
        self.released += 1


class RecordingCall:
    """Stands for a client method: records its arguments, answers from a list."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def body(items, rv, token=None):
    meta = {"resourceVersion": rv}
    if token:
        meta["continue"] = token
    return FakeResponse(json.dumps({"items": items, "metadata": meta}).encode())


def test_lines_split_across_chunks():
    chunks = [b'{"a":', b'1}\n{"b":2}\n\n{"c"', b":3}"]
    assert list(json_lines(FakeStream(chunks))) == ['{"a":1}', '{"b":2}', '{"c":3}']


def test_errors():
    with pytest.raises(WatchGoneError):
        check_event({"type": "ERROR", "object": {"code": 410, "message": "too old"}})
    with pytest.raises(WatchError):
        check_event({"type": "ERROR", "object": {"code": 500}})
    event = {"type": "ADDED", "object": {}}
    assert check_event(event) is event


def test_list_json_reads_items_and_version_and_releases_the_connection():
    response = body([{"a": 1}], "7")
    call = RecordingCall(response)
    assert list_json(call, "g", field_selector="x=y") == ([{"a": 1}], "7")
    args, kwargs = call.calls[0]
    assert args == ("g",)
    assert kwargs == {"_preload_content": False, "field_selector": "x=y"}
    assert response.released == 1


def test_list_pages_follow_continue_tokens():
    call = RecordingCall(body([1, 2], "9", token="t1"), body([3], "9"))
    assert list(list_json_pages(call, limit=2)) == [([1, 2], "9"), ([3], "9")]
    assert [kwargs.get("_continue") for _, kwargs in call.calls] == [None, "t1"]
    assert all(kwargs["limit"] == 2 for _, kwargs in call.calls)


def test_events_yield_until_the_stream_ends_and_release_the_connection():
    lines = [{"type": "ADDED", "object": {"n": 1}}, {"type": "BOOKMARK", "object": {}}]
    response = FakeResponse(chunks=[b"\n".join(json.dumps(e).encode() for e in lines) + b"\n"])
    call = RecordingCall(response)
    stream = WatchStream(10.0, read_slack=30.0)
    events = list(stream.events(call, "g", resource_version="5", timeout_seconds=60, x=1))
    assert events == lines
    args, kwargs = call.calls[0]
    assert args == ("g",)
    assert kwargs["watch"] is True and kwargs["allow_watch_bookmarks"] is True
    assert kwargs["resource_version"] == "5" and kwargs["timeout_seconds"] == 60
    assert kwargs["_request_timeout"] == (10.0, 90.0) and kwargs["x"] == 1
    assert response.released == 1


def test_gone_at_the_request_or_in_the_stream_means_relist():
    stream = WatchStream()
    with pytest.raises(WatchGoneError):
        list(
            stream.events(
                RecordingCall(ApiException(status=410)), resource_version="1", timeout_seconds=1
            )
        )
    with pytest.raises(ApiException):
        list(
            stream.events(
                RecordingCall(ApiException(status=500)), resource_version="1", timeout_seconds=1
            )
        )
    gone = FakeResponse(chunks=[b'{"type":"ERROR","object":{"code":410,"message":"old"}}\n'])
    with pytest.raises(WatchGoneError):
        list(stream.events(RecordingCall(gone), resource_version="1", timeout_seconds=1))
    assert gone.released == 1


def test_interrupt_shuts_the_open_watch_socket_down():
    stream = WatchStream()
    stream.interrupt()  # nothing open: nothing to do
    response = FakeResponse(chunks=[b'{"type":"ADDED","object":{}}\n'] * 2)
    events = stream.events(RecordingCall(response), resource_version="1", timeout_seconds=1)
    next(events)
    stream.interrupt()
    assert response.connection.sock.shut == [socket.SHUT_RDWR]
    events.close()
    stream.interrupt()  # closed: the response is forgotten
    assert response.connection.sock.shut == [socket.SHUT_RDWR]
    assert response.released == 1
