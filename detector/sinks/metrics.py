"""Delivery metrics, per sink, in the Prometheus registry the service exposes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class SinkMetrics:
    """One set of metrics for every sink of a registry (label `sink`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "detector_sink_deliveries",
            "Detections an endpoint accepted.",
            ["sink"],
            registry=registry,
        )
        self.failures = Counter(
            "detector_sink_failures",
            "Delivery attempts that failed, retryable or not.",
            ["sink"],
            registry=registry,
        )
        self.retries = Counter(
            "detector_sink_retries",
            "Attempts scheduled again after a retryable failure.",
            ["sink"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "detector_sink_dead_letters",
            "Detections given up on: `rejected` by the endpoint, or past the `deadline`.",
            ["sink", "reason"],
            registry=registry,
        )
        self.outbox_depth = Gauge(
            "detector_sink_outbox_depth",
            "Detections waiting in the outbox.",
            ["sink"],
            registry=registry,
        )
