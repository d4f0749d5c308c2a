"""Prometheus metrics of the intake, in a registry the caller owns (never the global one)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from prometheus_client import CollectorRegistry, Counter, Gauge

from detector.intake.queue import RecordQueue


class IntakeMetrics:
    """Requests by route and outcome, accepted records by route, and the queue's fill."""

    def __init__(
        self, registry: CollectorRegistry, queue: RecordQueue, routes: Iterable[str]
    ) -> None:
        self.requests = Counter(
            "detector_intake_requests",
            "HTTP intake requests by route and outcome (accepted, ignored or the reason "
            "of the rejection).",
            ["route", "outcome"],
            registry=registry,
        )
        self.records = Counter(
            "detector_intake_records",
            "Records accepted into the intake queue, by route.",
            ["route"],
            registry=registry,
        )
        #: the counters' children by label values, each looked up once
        self.requests_for = cache(self.requests.labels)
        self.records_for = cache(self.records.labels)
        for route in routes:
            self.records_for(route)
        Gauge(
            "detector_intake_queue_records",
            "Records waiting in the intake queue.",
            registry=registry,
        ).set_function(lambda: len(queue))
        Gauge(
            "detector_intake_queue_bytes",
            "Memory held by the records waiting in the intake queue.",
            registry=registry,
        ).set_function(lambda: queue.used)
        Gauge(
            "detector_intake_queue_capacity_bytes",
            "Memory the intake queue may hold.",
            registry=registry,
        ).set(queue.capacity)
