"""Item 10 of "do no harm": a cluster-wide cap on the node agents' evictions in the webhook.
Beyond it an own-node eviction is answered 429 with Retry-After, which the agent reads as the
API server's throttling: it waits, and never kills a pod for it."""

from __future__ import annotations

import asyncio

import pytest
from test_eviction_decision import AGENT, review
from test_webhook_server import ON_A, ON_B, FakePlacements

from oomguard.monitor.actions.pod_evictor import eviction_429
from oomguard.operator.webhook.eviction_cap import EvictionCap
from oomguard.operator.webhook.eviction_decision import Reason
from oomguard.operator.webhook.webhook_server import EvictionWebhook


def test_the_cap_admits_at_most_n_in_any_window():
    cap = EvictionCap(max_evictions=2, window_seconds=60)
    assert cap.admit(0.0) is None
    assert cap.admit(10.0) is None
    assert cap.admit(20.0) == 40  # the first leaves the window at 60
    assert cap.admit(59.0) == 1
    assert cap.admit(60.0) is None  # the first has left
    assert cap.admit(61.0) == 9


def test_zero_is_no_cap():
    cap = EvictionCap(max_evictions=0, window_seconds=60)
    assert all(cap.admit(0.0) is None for _ in range(1000))


@pytest.mark.parametrize(("count", "window"), [(-1, 60), (1, 0)])
def test_nonsense_caps_are_refused(count, window):
    with pytest.raises(ValueError, match="cap"):
        EvictionCap(count, window)


def answers(webhook, bodies):
    async def run():
        return [await webhook.review(body) for body in bodies]

    return asyncio.run(run())


def test_own_node_evictions_beyond_the_cap_get_429_with_retry_after():
    clock = [100.0]
    placements = FakePlacements(cached={("shop", "web-1"): ON_A, ("shop", "web-2"): ON_B})
    webhook = EvictionWebhook(placements, [AGENT], cap=EvictionCap(2, 60), clock=lambda: clock[0])
    done = answers(webhook, [review(name="web-1")] * 3 + [review(name="web-2")])
    verdicts = [verdict for _, verdict in done]
    assert [v.allowed for v in verdicts] == [True, True, False, False]
    assert verdicts[2].reason is Reason.CLUSTER_CAP
    assert verdicts[3].reason is Reason.OTHER_NODE  # a refusal is not counted nor capped
    status = done[2][0]["response"]["status"]
    assert status["code"] == 429
    assert status["details"] == {"retryAfterSeconds": 60}
    # what the agent makes of it: throttling to wait out, never a PodDisruptionBudget block
    assert eviction_429(status["message"], {"Retry-After": "60"}) == 60.0
    assert eviction_429(status["message"], {}) is not None
    clock[0] += 60
    assert answers(webhook, [review(name="web-1")])[0][1].allowed


def test_other_users_are_never_capped():
    webhook = EvictionWebhook(FakePlacements(), [AGENT], cap=EvictionCap(1, 60), clock=lambda: 0.0)
    done = answers(webhook, [review(username="system:admin")] * 3)
    assert all(verdict.allowed for _, verdict in done)
