"""Slack incoming webhook: a message a person on call can act on.

The message gives the rule title and level, the rendered detection message (actor,
action and target in words), actor, action, source and time as fields, one line per
piece of evidence, the detection id and a replay command that starts at the earliest
evidence. Text from the audit logs is escaped, so an actor or branch named
`<!channel>` cannot ping anyone or hide a link. The webhook URL is the credential: it
is a secret of the sink and is masked in every error.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import orjson

from detector.detections import Detection
from detector.sinks.base import Outcome
from detector.sinks.http import HttpSink
from detector.timestamps import format_timestamp

#: Slack's limits: header text, section text, fields per section.
HEADER_LIMIT = 150
TEXT_LIMIT = 3000
FIELDS_LIMIT = 10
#: Evidence lines shown; the rest are counted.
EVIDENCE_LINES = 10


def escape(text: str) -> str:
    """Slack mrkdwn control characters as entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def replay_since(detection: Detection) -> str:
    """Where a replay must start to see everything that made the detection."""
    times = [evidence.timestamp for evidence in detection.evidence]
    if detection.window is not None:
        times.append(detection.window.start)
    return format_timestamp(min(times, default=detection.timestamp))


def slack_message(detection: Detection, replay_command: str) -> dict[str, Any]:
    """The incoming-webhook body for `detection`."""
    rule = detection.rule
    level = f"[{(rule.level or 'no level').upper()}]"
    headline = f"{level} {rule.title}"
    first = detection.evidence[0] if detection.evidence else None
    fields = [
        ("Actor", first.actor if first else None),
        ("Action", first.action if first else None),
        ("Source", ", ".join(sorted({evidence.source for evidence in detection.evidence}))),
        ("Time", format_timestamp(detection.timestamp)),
        *(detection.group or {}).items(),
    ]
    lines = [
        f"• {format_timestamp(e.timestamp)} {e.source} {e.action or '-'} by {e.actor or '-'}"
        f" (event {e.id})"
        for e in detection.evidence[:EVIDENCE_LINES]
    ]
    if len(detection.evidence) > EVIDENCE_LINES:
        lines.append(f"… and {len(detection.evidence) - EVIDENCE_LINES} more")
    replay = f"{replay_command} --since {replay_since(detection)}"
    return {
        "text": escape(f"{level} {detection.message}"),
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": _clip(headline, HEADER_LIMIT)},
            },
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _clip(escape(detection.message), TEXT_LIMIT)},
            },
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{escape(name)}*\n{escape(value or '-')}"}
                    for name, value in fields[:FIELDS_LIMIT]
                ],
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": _clip(escape("\n".join(["*Evidence*", *lines])), TEXT_LIMIT),
                },
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": escape(f"Detection `{detection.id}` · replay: `{replay}`"),
                    }
                ],
            },
        ],
    }


class SlackSink(HttpSink):
    """Posts `slack_message` to an incoming-webhook URL."""

    def __init__(self, name: str, webhook_url: str, replay_command: str) -> None:
        path = urlsplit(webhook_url).path
        super().__init__(name, webhook_url, secrets=[webhook_url, path if len(path) > 1 else ""])
        self._replay_command = replay_command

    async def send(self, detection: Detection) -> Outcome:
        return await self.post(orjson.dumps(slack_message(detection, self._replay_command)))
