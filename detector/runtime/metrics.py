"""Prometheus metrics of the pipeline (the intake and the sinks register their own)."""

from __future__ import annotations

from functools import cache

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class PipelineMetrics:
    """Counters from intake to detection, in one registry the service serves on /metrics.
    `..._for(labels)` are the children of the labelled counters, looked up once each
    (prometheus_client takes a lock and builds the key on every `labels` call)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events_in = Counter(
            "detector_events_in", "Records read, by source.", ["source"], registry=registry
        )
        self.normalized = Counter(
            "detector_events_normalized", "Events normalized, by source.", ["source"],
            registry=registry,
        )  # fmt: skip
        self.dead_lettered = Counter(
            "detector_dead_letters",
            "Records dead-lettered, by reason (its first words).",
            ["reason"],
            registry=registry,
        )
        self.detections = Counter(
            "detector_detections", "Detections, by rule and whether staged.",
            ["rule", "staged"], registry=registry,
        )  # fmt: skip
        self.events_in_for = cache(self.events_in.labels)
        self.normalized_for = cache(self.normalized.labels)
        self.dead_lettered_for = cache(self.dead_lettered.labels)
        self.detections_for = cache(self.detections.labels)
        self.latency = Histogram(
            "detector_detection_latency_seconds",
            "From a record's arrival to its detections being handed to the sinks.",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0),
            registry=registry,
        )
        self.late = Gauge(
            "detector_late_events", "Events too late for the correlations.", registry=registry
        )
        self.evicted_groups = Gauge(
            "detector_evicted_groups",
            "Correlation groups evicted by the live-group cap.",
            registry=registry,
        )


def reason_label(reason: str) -> str:
    """A dead letter's reason, cut to its kind so the label set stays small."""
    return reason.split(":", 1)[0][:40]
