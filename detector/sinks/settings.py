"""Configuration of the alert sinks (the `sinks:` section).

Secrets (a webhook signing key, a PagerDuty routing key, a Slack webhook URL, which is
itself the credential) are never written in the configuration: it names the environment
variable or the file that holds each one, and they are read when the sinks are built.

```yaml
sinks:
  outbox_dir: /var/lib/detector/outbox
  outputs:
    - {name: siem, type: file, path: /var/log/detector/detections.jsonl}
    - name: hooks
      type: webhook
      url: https://alerts.example.com/detector
      secret: {env: DETECTOR_WEBHOOK_SECRET}      # whsec_…
    - {name: chat, type: slack, webhook_url: {file: /run/secrets/slack-url}}
    - name: oncall
      type: pagerduty
      routing_key: {env: PAGERDUTY_ROUTING_KEY}
      retry: {base: 2, cap: 300, deadline: 86400}
    - name: siem
      type: elasticsearch
      kind: elasticsearch                         # or opensearch
      hosts: [https://es.example.com:9200]
      api_key: {env: DETECTOR_ES_API_KEY}
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from detector.search.connection import SearchConnection
from detector.search.templates import DETECTIONS_STREAM
from detector.secrets import SecretRef


class RetryPolicy(BaseModel):
    """How a sink retries (seconds): jittered exponential backoff from `base` up to `cap`;
    after `deadline` since a detection was enqueued, it goes to the dead letters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base: float = Field(default=1.0, gt=0, description="First retry delay.")
    cap: float = Field(default=300.0, gt=0, description="Longest delay between attempts.")
    deadline: float = Field(default=86_400.0, gt=0, description="Give up after this long.")
    timeout: float = Field(default=15.0, gt=0, description="One attempt's time limit.")

    @model_validator(mode="after")
    def _ordered(self) -> RetryPolicy:
        if self.cap < self.base:
            raise ValueError("`cap` must not be below `base`")
        return self


class _Output(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="Names the outbox directory and the `sink` metrics label.",
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy)


class StdoutOutput(_Output):
    """Detections as JSON lines on standard output."""

    type: Literal["stdout"]


class FileOutput(_Output):
    """Detections appended as JSON lines to a file."""

    type: Literal["file"]
    path: Path


class WebhookOutput(_Output):
    """The detection JSON POSTed to `url`, signed the Standard Webhooks way."""

    type: Literal["webhook"]
    url: HttpUrl
    secret: SecretRef = Field(description="The signing secret, `whsec_` and base64.")
    in_flight: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Detections one attempt posts at once (each its own request and "
        "outcome): one at a time caps the alert rate at one round trip per alert.",
    )


class SlackOutput(_Output):
    """A readable message through a Slack incoming webhook."""

    type: Literal["slack"]
    webhook_url: SecretRef = Field(description="The incoming-webhook URL: it is the credential.")
    replay_command: str = Field(
        default="detector replay <logs>",
        description="Start of the replay hint in each message; `--since <time>` is appended.",
    )


class PagerDutyOutput(_Output):
    """A PagerDuty Events API v2 trigger per detection."""

    type: Literal["pagerduty"]
    url: HttpUrl = HttpUrl("https://events.pagerduty.com/v2/enqueue")
    routing_key: SecretRef = Field(description="The integration key of the service.")


class SearchOutput(SearchConnection, _Output):
    """Detections bulk-indexed into an Elasticsearch or OpenSearch data stream (`kind`)."""

    type: Literal["elasticsearch"]
    stream: str = Field(
        default=DETECTIONS_STREAM,
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
        description="The data stream (and the name of its index template).",
    )
    batch_size: int = Field(default=500, ge=1, le=10_000, description="Detections per request.")
    install_template: bool = Field(
        default=True, description="Install the index template at start; false: require it."
    )


OutputSettings = Annotated[
    StdoutOutput | FileOutput | WebhookOutput | SlackOutput | PagerDutyOutput | SearchOutput,
    Field(discriminator="type"),
]


class SinksSettings(BaseModel):
    """Every output, and where their outboxes live (`<outbox_dir>/<name>/`)."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    outbox_dir: Path = Path("detector-outbox")
    remember: float = Field(
        default=30 * 86_400.0,
        gt=0,
        description="Seconds a settled detection id is remembered, so it is not sent twice.",
    )
    stop_timeout: float = Field(
        default=10.0, ge=0, description="Seconds a stop waits for attempts in flight."
    )
    outputs: list[OutputSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> SinksSettings:
        names = [output.name for output in self.outputs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"output names must be unique: {', '.join(duplicates)}")
        return self
