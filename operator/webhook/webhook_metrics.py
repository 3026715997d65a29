"""The eviction webhook's Prometheus metrics (on the operator's registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from oomguard.operator.webhook.eviction_decision import Reason


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.reviews = Counter(
            "oomguard_operator_webhook_reviews_total",
            "Eviction admission reviews answered, by verdict and reason.",
            ["allowed", "reason"],
            registry=self.registry,
        )
        self.errors = Counter(
            "oomguard_operator_webhook_errors_total",
            "Requests the webhook could not read (answered 400).",
            registry=self.registry,
        )
        self.duration = Histogram(
            "oomguard_operator_webhook_review_duration_seconds",
            "Time from receiving a review to sending the answer (server side).",
            registry=self.registry,
            # up to 30 s, the apiserver's longest timeoutSeconds: the chart's OOMGuardWebhookSlow
            # alert compares the 99th percentile with half the configured timeout
            buckets=(
                0.0005,
                0.001,
                0.0025,
                0.005,
                0.01,
                0.025,
                0.05,
                0.1,
                0.25,
                0.5,
                1,
                2.5,
                5,
                10,
                30,
            ),
        )
        self.cache_misses = Counter(
            "oomguard_operator_webhook_cache_misses_total",
            "Target pods not in the watch cache, by what the fallback GET found.",
            ["result"],
            registry=self.registry,
        )
        self.cached_pods = Gauge(
            "oomguard_operator_webhook_cached_pods",
            "Pods in the webhook's placement cache.",
            registry=self.registry,
        )
        self.cert_expiry = Gauge(
            "oomguard_operator_webhook_cert_expiry_timestamp_seconds",
            "When the serving certificate in use expires (Unix time); renewals move it on.",
            registry=self.registry,
        )
        for reason in Reason:
            self.reviews.labels(str(reason.allows).lower(), reason.value)
        for result in ("found", "not-found", "error"):
            self.cache_misses.labels(result)
