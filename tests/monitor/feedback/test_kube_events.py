from datetime import UTC, datetime

from oomguard.monitor.feedback.kube_events import KubeEventPoster, PodRef, event_body

POD = PodRef("ns", "web-1", "uid-1")
NOW = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def test_event_body_names_the_pod_and_reason():
    body = event_body(POD, "OOMGuardEviction", "usage 2Gi over 1Gi", "node-a", NOW)
    assert body["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "namespace": "ns",
        "name": "web-1",
        "uid": "uid-1",
    }
    assert body["metadata"] == {"generateName": "web-1.", "namespace": "ns"}
    assert body["reason"] == "OOMGuardEviction"
    assert body["type"] == "Warning"
    assert body["source"] == {"component": "oomguard", "host": "node-a"}
    assert body["firstTimestamp"] == "2024-05-06T07:08:09Z"
    assert body["eventTime"] == "2024-05-06T07:08:09.123456Z"


def test_long_messages_are_cut():
    assert len(event_body(POD, "r", "x" * 5000, "n", NOW)["message"]) == 1024


class FailingApi:
    def create_namespaced_event(self, namespace, body, **kwargs):
        raise ConnectionError("down")


class RecordingApi:
    def __init__(self):
        self.bodies = []

    def create_namespaced_event(self, namespace, body, **kwargs):
        self.bodies.append((namespace, body))


def test_post_failures_are_counted_not_raised():
    poster = KubeEventPoster(FailingApi(), "node-a")
    assert poster.post(POD, "m") is False
    assert poster.failed == 1


def test_post_writes_into_the_pods_namespace():
    api = RecordingApi()
    poster = KubeEventPoster(api, "node-a")
    assert poster.post(POD, "m")
    assert api.bodies[0][0] == "ns" and poster.posted == 1
