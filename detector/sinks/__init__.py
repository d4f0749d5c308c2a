"""Alert sinks: every detection reaches every configured endpoint, at least once.

A runtime builds a `Dispatcher` (`build_dispatcher(settings.sinks, registry)`), starts
it, calls `enqueue(detection)` for each detection (durable and local when it returns),
or `submit(detection)` and, where it must know they are durable, `await committed()`
(group commit: one fsync for many detections, off the event loop), and stops it on
shutdown. Each sink has its own outbox on disk and its own delivery
worker with retries, a deadline and dead letters; see `delivery` and `outbox`.
"""

from detector.secrets import SecretError, SecretRef
from detector.sinks.base import Delivered, Outcome, Rejected, Retry, Sink
from detector.sinks.delivery import DeliveryWorker
from detector.sinks.dispatcher import Dispatcher
from detector.sinks.factory import build_dispatcher, build_sink
from detector.sinks.jsonlines import JsonLinesSink
from detector.sinks.metrics import SinkMetrics
from detector.sinks.outbox import Outbox, OutboxError
from detector.sinks.pagerduty import PagerDutySink
from detector.sinks.settings import RetryPolicy, SinksSettings
from detector.sinks.slack import SlackSink
from detector.sinks.webhook import WebhookSink

__all__ = [
    "Delivered",
    "DeliveryWorker",
    "Dispatcher",
    "JsonLinesSink",
    "Outbox",
    "OutboxError",
    "Outcome",
    "PagerDutySink",
    "Rejected",
    "Retry",
    "RetryPolicy",
    "SecretError",
    "SecretRef",
    "Sink",
    "SinkMetrics",
    "SinksSettings",
    "SlackSink",
    "WebhookSink",
    "build_dispatcher",
    "build_sink",
]
