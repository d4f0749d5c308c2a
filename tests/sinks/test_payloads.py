"""What each sink sends, field by field, and how answers and delays are read."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from detector.detections import Detection, Evidence, RuleRef, Window
from detector.sinks.base import is_retryable
from detector.sinks.delivery import backoff
from detector.sinks.http import retry_after
from detector.sinks.pagerduty import pagerduty_event
from detector.sinks.settings import RetryPolicy
from detector.sinks.slack import slack_message

NOW = datetime(2025, 3, 10, 13, 0, 0, tzinfo=UTC)


def test_pagerduty_trigger_event(detection: Callable[..., Detection]) -> None:
    one = detection(1)
    assert pagerduty_event(one, "R0UT1NGKEY") == {
        "routing_key": "R0UT1NGKEY",
        "event_action": "trigger",
        "dedup_key": one.id,
        "client": "detector",
        "payload": {
            "summary": "Repository destroyed: mallory repo.destroy on acme/api-1 (github)",
            "source": "github",
            "severity": "error",
            "timestamp": "2025-03-10T12:58:43.961000Z",
            "class": "Repository destroyed",
            "custom_details": {
                "schema_version": "1.0",
                "id": one.id,
                "@timestamp": "2025-03-10T12:58:43.961000Z",
                "rule": {
                    "id": "5f0e4f55-7f0b-4a4e-9d1e-3c3b7a1d2e01",
                    "title": "Repository destroyed",
                    "level": "high",
                    "tags": ["attack.impact", "attack.t1485"],
                },
                "evidence": [
                    {
                        "id": "evt-1",
                        "@timestamp": "2025-03-10T12:58:43.961000Z",
                        "source": "github",
                        "action": "repo.destroy",
                        "actor": "mallory",
                    }
                ],
                "message": "Repository destroyed: mallory repo.destroy on acme/api-1 (github)",
            },
        },
    }


@pytest.mark.parametrize(
    ("level", "severity"),
    [
        ("critical", "critical"),
        ("high", "error"),
        ("medium", "warning"),
        ("low", "info"),
        ("informational", "info"),
        (None, "warning"),
    ],
)
def test_pagerduty_severity_follows_the_rule_level(
    detection: Callable[..., Detection], level: str | None, severity: str
) -> None:
    rule = RuleRef(id="r", title="t", level=level)  # type: ignore[arg-type]
    assert pagerduty_event(detection(rule=rule), "k")["payload"]["severity"] == severity


def test_pagerduty_summary_is_cut_to_its_limit(detection: Callable[..., Detection]) -> None:
    long = detection().model_copy(update={"message": "x" * 2000})
    summary = pagerduty_event(long, "k")["payload"]["summary"]
    assert summary == "x" * 1023 + "…"


def test_slack_message(detection: Callable[..., Detection]) -> None:
    one = detection(1)
    since = "2025-03-10T12:58:43.961000Z"
    assert slack_message(one, "detector replay /var/log/audit") == {
        "text": "[HIGH] Repository destroyed: mallory repo.destroy on acme/api-1 (github)",
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": "[HIGH] Repository destroyed"},
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "Repository destroyed: mallory repo.destroy on acme/api-1 (github)",
                },
            },
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": "*Actor*\nmallory"},
                    {"type": "mrkdwn", "text": "*Action*\nrepo.destroy"},
                    {"type": "mrkdwn", "text": "*Source*\ngithub"},
                    {"type": "mrkdwn", "text": f"*Time*\n{since}"},
                ],
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"*Evidence*\n• {since} github repo.destroy by mallory (event evt-1)",
                },
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"Detection `{one.id}` · replay:"
                        f" `detector replay /var/log/audit --since {since}`",
                    }
                ],
            },
        ],
    }


def test_slack_text_from_the_logs_cannot_mention_or_link(
    detection: Callable[..., Detection],
) -> None:
    hostile = detection(user_name="<!channel> & <https://evil.example|docs>")
    message = slack_message(hostile, "detector replay <logs>")
    fields = message["blocks"][2]["fields"]
    assert fields[0]["text"] == "*Actor*\n&lt;!channel&gt; &amp; &lt;https://evil.example|docs&gt;"
    assert "<" not in str(message["text"]) and "<!channel>" not in str(message["blocks"][1:])
    assert message["blocks"][4]["elements"][0]["text"].endswith(
        "`detector replay &lt;logs&gt; --since 2025-03-10T12:58:43.961000Z`"
    )


def test_slack_correlation_shows_group_evidence_and_replays_from_the_window_start() -> None:
    start = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
    evidence = [
        Evidence(id=f"e{n}", timestamp=start.replace(minute=n + 5), source="gitlab", actor="eve")
        for n in range(12)
    ]
    correlated = Detection(
        id="c0ffee",
        timestamp=start.replace(minute=16),
        rule=RuleRef(id="r", title="Token spray", level="critical"),
        group={"user.name": "eve"},
        window=Window(start=start, end=start.replace(minute=30)),
        evidence=evidence,
        message="Token spray: 12 events by eve",
    )
    blocks = slack_message(correlated, "detector replay <logs>")["blocks"]
    assert blocks[0]["text"]["text"] == "[CRITICAL] Token spray"
    assert blocks[2]["fields"][-1] == {"type": "mrkdwn", "text": "*user.name*\neve"}
    evidence_lines = blocks[3]["text"]["text"].split("\n")
    assert evidence_lines[0] == "*Evidence*"
    assert evidence_lines[1] == "• 2025-03-10T12:05:00.000000Z gitlab - by eve (event e0)"
    assert evidence_lines[10] == "• 2025-03-10T12:14:00.000000Z gitlab - by eve (event e9)"
    assert evidence_lines[11:] == ["… and 2 more"]
    assert blocks[4]["elements"][0]["text"].endswith("--since 2025-03-10T12:00:00.000000Z`")


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("Mon, 10 Mar 2025 13:00:30 GMT", 30.0),
        ("Mon, 10 Mar 2025 12:59:00 GMT", 0.0),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(
    header: str | None, seconds: float | None
) -> None:
    assert retry_after(header, NOW) == seconds


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        *[(301, True), (400, False), (401, False), (404, False), (408, True), (410, False)],
        *[(413, False), (429, True), (500, True), (502, True), (503, True)],
    ],
)
def test_which_answers_are_worth_another_attempt(status: int, retryable: bool) -> None:
    assert is_retryable(status) is retryable


def test_backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    policy = RetryPolicy(base=1, cap=8)
    for failures, step in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 8), (10_000, 8)]:
        for _ in range(50):
            assert step / 2 <= backoff(policy, failures) <= step
    assert backoff(policy, 1, retry_after=30) == 30
    assert 0.5 <= backoff(policy, 1, retry_after=0) <= 1
