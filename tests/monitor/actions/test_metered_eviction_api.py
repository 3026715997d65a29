"""Every Eviction API request is reported with its answer and duration, whatever it ends in;
what the evictor sees is unchanged."""

import pytest
from monitor_fakes import Api, Clock

from oomguard.monitor.actions.metered_eviction_api import UNREACHABLE, MeteredEvictionApi
from oomguard.monitor.actions.pod_evictor import ApiThrottledError, ApiUnreachableError


class Sink:
    def __init__(self):
        self.requests = []

    def eviction_request(self, code, seconds):
        self.requests.append((code, seconds))


class SlowApi(Api):
    """Each request takes ``seconds`` on the test's clock."""

    def __init__(self, clock, seconds, statuses):
        super().__init__(statuses)
        self.uids = []
        self.clock = clock
        self.seconds = seconds

    def evict(self, namespace, name, grace, uid=None):
        self.clock.now += self.seconds
        self.uids.append(uid)
        return super().evict(namespace, name, grace, uid)


def test_each_answer_is_reported_with_its_code_and_duration():
    clock = Clock(10.0)
    api = SlowApi(
        clock,
        0.25,
        {
            "blocked": 429,
            "gone": 404,
            "refused": 503,
            "busy": ApiThrottledError(2.0),
            "away": ApiUnreachableError("connection refused"),
        },
    )
    sink = Sink()
    metered = MeteredEvictionApi(api, sink, clock)
    assert metered.evict("apps", "ok", 10, uid="u-1") == 201
    assert metered.evict("apps", "blocked", 10) == 429
    assert metered.evict("apps", "gone", 10) == 404
    assert metered.evict("apps", "refused", 10) == 503
    with pytest.raises(ApiThrottledError):
        metered.evict("apps", "busy", 10)
    with pytest.raises(ApiUnreachableError):
        metered.evict("apps", "away", 10)
    assert sink.requests == [
        ("201", 0.25),
        ("429", 0.25),
        ("404", 0.25),
        ("503", 0.25),
        ("429", 0.25),  # API Priority and Fairness: the server answered 429 too
        (UNREACHABLE, 0.25),
    ]
    assert api.calls == ["ok", "blocked", "gone", "refused", "busy", "away"]
    assert api.uids[0] == "u-1"  # the UID precondition reaches the API
