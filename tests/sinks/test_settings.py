"""Sink configuration: secrets only by reference, and a dispatcher built from it."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from detector.detections import Detection
from detector.secrets import SecretError, SecretRef
from detector.sinks.factory import build_dispatcher, build_sink
from detector.sinks.jsonlines import JsonLinesSink
from detector.sinks.pagerduty import PagerDutySink, pagerduty_event
from detector.sinks.settings import RetryPolicy, SinksSettings
from detector.sinks.slack import SlackSink
from detector.sinks.webhook import WebhookSink

SECRET = "whsec_" + base64.b64encode(b"detector-test-signing-key-32byte").decode()
SLACK_URL = "https://hooks.slack.com/services/T0001/B0001/XXXXXXXXXXXXXXXXXXXXXXXX"


def test_a_secret_is_read_from_the_environment_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PD_KEY", "  R0UT1NGKEY\n")
    (tmp_path / "slack-url").write_text(SLACK_URL + "\n")
    assert SecretRef(env="PD_KEY").read() == "R0UT1NGKEY"
    assert SecretRef(file=tmp_path / "slack-url").read() == SLACK_URL


def test_a_missing_secret_is_named_by_where_it_was_looked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PD_KEY", raising=False)
    with pytest.raises(SecretError) as error:
        SecretRef(env="PD_KEY").read()
    assert str(error.value) == "the secret in environment variable PD_KEY is missing or empty"
    missing = tmp_path / "nope"
    with pytest.raises(SecretError) as error:
        SecretRef(file=missing).read()
    assert (
        str(error.value) == f"cannot read the secret from file {missing}: No such file or directory"
    )


@pytest.mark.parametrize(
    "secret",
    [
        SLACK_URL,  # the value itself in the configuration
        {"env": SLACK_URL},  # a value where a variable name belongs
        {"value": SLACK_URL},
        {"env": "A", "file": "/run/secrets/a"},
    ],
)
def test_a_secret_written_in_the_configuration_is_refused_without_echoing_it(
    secret: object,
) -> None:
    with pytest.raises(ValidationError) as error:
        SinksSettings.model_validate(
            {"outputs": [{"name": "chat", "type": "slack", "webhook_url": secret}]}
        )
    assert "outputs.0.slack.webhook_url" in str(error.value)
    assert SLACK_URL not in str(error.value)


def test_output_names_are_unique_and_retry_bounds_ordered() -> None:
    with pytest.raises(ValidationError, match="output names must be unique: out"):
        SinksSettings.model_validate(
            {"outputs": [{"name": "out", "type": "stdout"}, {"name": "out", "type": "stdout"}]}
        )
    with pytest.raises(ValidationError, match="`cap` must not be below `base`"):
        RetryPolicy(base=10, cap=1)


def test_the_documented_example_configuration_builds_every_sink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DETECTOR_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", "R0UT1NGKEY")
    (tmp_path / "slack-url").write_text(SLACK_URL)
    settings = SinksSettings.model_validate(
        {
            "outbox_dir": str(tmp_path / "outbox"),
            "outputs": [
                {"name": "siem", "type": "file", "path": str(tmp_path / "d.jsonl")},
                {"name": "console", "type": "stdout"},
                {
                    "name": "hooks",
                    "type": "webhook",
                    "url": "https://alerts.example.com/detector",
                    "secret": {"env": "DETECTOR_WEBHOOK_SECRET"},
                },
                {
                    "name": "chat",
                    "type": "slack",
                    "webhook_url": {"file": str(tmp_path / "slack-url")},
                },
                {
                    "name": "oncall",
                    "type": "pagerduty",
                    "routing_key": {"env": "PAGERDUTY_ROUTING_KEY"},
                    "retry": {"base": 2, "cap": 300, "deadline": 86400},
                },
            ],
        }
    )
    sinks = [build_sink(output) for output in settings.outputs]
    assert [type(sink) for sink in sinks] == [
        JsonLinesSink,
        JsonLinesSink,
        WebhookSink,
        SlackSink,
        PagerDutySink,
    ]
    assert [sink.name for sink in sinks] == ["siem", "console", "hooks", "chat", "oncall"]
    assert settings.outputs[4].retry == RetryPolicy(base=2, cap=300, deadline=86400, timeout=15)


def test_an_unusable_secret_is_reported_without_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "whsec_")
    monkeypatch.setenv("SLACK_URL", "hooks.slack.com/services/T0001/B0001/XXXX")
    hook, chat = SinksSettings.model_validate(
        {
            "outputs": [
                {
                    "name": "hooks",
                    "type": "webhook",
                    "url": "https://alerts.example.com/",
                    "secret": {"env": "HOOK_SECRET"},
                },
                {"name": "chat", "type": "slack", "webhook_url": {"env": "SLACK_URL"}},
            ]
        }
    ).outputs
    with pytest.raises(SecretError) as error:
        build_sink(hook)
    assert str(error.value) == (
        "the environment variable HOOK_SECRET is not a Standard Webhooks secret (whsec_<base64>)"
    )
    with pytest.raises(SecretError) as error:
        build_sink(chat)
    assert str(error.value) == "the environment variable SLACK_URL does not hold an http(s) URL"


async def test_a_dispatcher_from_the_configuration_delivers_and_restarts_on_its_outbox(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    receiver,
    detection: Callable[..., Detection],
    until,
) -> None:
    pagerduty = await receiver()
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", "R0UT1NGKEY")
    settings = SinksSettings.model_validate(
        {
            "outbox_dir": str(tmp_path / "outbox"),
            "stop_timeout": 1,
            "outputs": [
                {
                    "name": "oncall",
                    "type": "pagerduty",
                    "url": pagerduty.url("/v2/enqueue"),
                    "routing_key": {"env": "PAGERDUTY_ROUTING_KEY"},
                    "retry": {"base": 0.01, "cap": 0.05},
                }
            ],
        }
    )
    registry = CollectorRegistry()
    one = detection(1)
    async with build_dispatcher(settings, registry) as dispatcher:
        dispatcher.enqueue(one)
        await pagerduty.wait(lambda: len(pagerduty.accepted()) == 1)
        await until(lambda: len(dispatcher.workers[0].outbox) == 0)
    assert pagerduty.requests[0].json() == pagerduty_event(one, "R0UT1NGKEY")
    assert (tmp_path / "outbox" / "oncall" / "journal.jsonl").exists()
    assert registry.get_sample_value("detector_sink_deliveries_total", {"sink": "oncall"}) == 1

    async with build_dispatcher(settings, CollectorRegistry()) as again:
        again.enqueue(one)  # already delivered: remembered by the outbox
        assert len(again.workers[0].outbox) == 0
    assert len(pagerduty.requests) == 1
