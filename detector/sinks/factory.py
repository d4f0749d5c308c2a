"""Sinks and their workers from the configuration; secrets are read here, once."""

from __future__ import annotations

from typing import assert_never
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry

from detector.secrets import SecretError
from detector.sinks.base import Sink
from detector.sinks.delivery import DeliveryWorker
from detector.sinks.dispatcher import Dispatcher
from detector.sinks.jsonlines import JsonLinesSink
from detector.sinks.metrics import SinkMetrics
from detector.sinks.pagerduty import PagerDutySink
from detector.sinks.search import SearchSink
from detector.sinks.settings import (
    FileOutput,
    OutputSettings,
    PagerDutyOutput,
    SearchOutput,
    SinksSettings,
    SlackOutput,
    StdoutOutput,
    WebhookOutput,
)
from detector.sinks.slack import SlackSink
from detector.sinks.webhook import WebhookSink


def build_sink(output: OutputSettings) -> Sink:
    """The sink `output` describes; SecretError names a secret that is missing or unusable."""
    if isinstance(output, StdoutOutput):
        return JsonLinesSink(output.name)
    if isinstance(output, FileOutput):
        return JsonLinesSink(output.name, output.path)
    if isinstance(output, WebhookOutput):
        try:
            return WebhookSink(output.name, str(output.url), output.secret.read(), output.in_flight)
        except SecretError:
            raise
        except Exception:  # the library raises several types; their text is not shown
            raise SecretError(
                f"the {output.secret.where()} is not a Standard Webhooks secret (whsec_<base64>)"
            ) from None
    if isinstance(output, SlackOutput):
        url = output.webhook_url.read()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SecretError(f"the {output.webhook_url.where()} does not hold an http(s) URL")
        return SlackSink(output.name, url, output.replay_command)
    if isinstance(output, PagerDutyOutput):
        return PagerDutySink(output.name, output.routing_key.read(), str(output.url))
    if isinstance(output, SearchOutput):
        return SearchSink(
            output.name, output, output.stream, output.batch_size, output.install_template
        )
    assert_never(output)


def build_dispatcher(settings: SinksSettings, registry: CollectorRegistry) -> Dispatcher:
    """Every configured output with its worker and outbox (`<outbox_dir>/<name>/`); the
    workers start with `Dispatcher.start`."""
    sinks = [(output, build_sink(output)) for output in settings.outputs]
    metrics = SinkMetrics(registry)
    workers: list[DeliveryWorker] = []
    try:
        for output, sink in sinks:
            directory = settings.outbox_dir / output.name
            workers.append(
                DeliveryWorker(sink, directory, output.retry, metrics, settings.remember)
            )
    except BaseException:
        for worker in workers:
            worker.outbox.close()
        raise
    return Dispatcher(workers, settings.stop_timeout)
