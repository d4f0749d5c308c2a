"""What the end-to-end tests of `detector run` and bench/service_latency.py share.

`detector run` runs as a real subprocess from a configuration written here; a local
alert endpoint (`Receiver`) checks the Standard Webhooks signature of every alert it is
sent; `/metrics` is read the way Prometheus reads it. Route secrets and the senders'
signatures are those of the intake's own tests (tests/intake/support.py), and the
bodies are vendor-format records from tests/fixtures/sources.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aiohttp
import orjson
from aiohttp import web
from multidict import CIMultiDict
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.intake.support import (
    BITBUCKET_WHSEC,
    ENVIRON,
    GITHUB_SECRET,
    GITLAB_TOKEN,
    K8S_TOKEN,
    fixture,
    github_headers,
    standard_headers,
)

#: The signing secret of the webhook sinks, which the receiver verifies with.
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"detector-e2e-signing-key-32bytes").decode()
SERVICE_ENVIRON = {**ENVIRON, "E2E_WEBHOOK_SECRET": WEBHOOK_SECRET}

#: Every route, each reading its secret from `SERVICE_ENVIRON`.
ROUTES: dict[str, Any] = {
    "kubernetes": {"secret": {"env": "K8S_TOKEN"}},
    "gitlab": {"secret": {"env": "GITLAB_TOKEN"}},
    "github": {"secret": {"env": "GITHUB_SECRET"}},
    "generic": {"bitbucket": {"secret": {"env": "BITBUCKET_WHSEC"}}},
}
#: Bitbucket Data Center's audit log, declared: its time is a Java `Instant`.
BITBUCKET_SOURCE = {
    "name": "bitbucket",
    "product": "bitbucket",
    "service": "audit",
    "time_field": "timestamp",
}
#: The shipped pack has no Bitbucket rule; this one reads Bitbucket's own field names.
BITBUCKET_RULE = """\
title: Bitbucket Global Permission Granted
id: 0c6f3f0e-5b7c-4d52-9a8e-2f1d6c4b7a90
status: test
description: A user or group was given a global permission such as SYS_ADMIN.
author: detector e2e
date: 2026-11-26
tags:
  - attack.privilege-escalation
  - attack.t1098
logsource:
  product: bitbucket
  service: audit
detection:
  selection:
    auditType.category: Permissions
    auditType.action: Global permission granted
  condition: selection
level: high
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_for(
    condition: Callable[[], Awaitable[bool]], deadline: float, what: str, every: float = 0.02
) -> None:
    """Poll `condition()` every `every` s until it holds; AssertionError naming `what` after
    `deadline` s."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if await condition():
            return
        await asyncio.sleep(every)
    raise AssertionError(f"timed out after {deadline:g}s waiting for {what}")


# -- the bodies each sender posts, and the alerts the shipped pack raises on them -------

#: The audit webhook's batch: an admission webhook, a rules review and a CronJob.
EVENT_LIST = fixture("kubernetes/webhook-eventlist.json")
WEBHOOK_AUDIT = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d:ResponseComplete"
REVIEW_AUDIT = "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e:ResponseComplete"
CRONJOB_AUDIT = "3c4d5e6f-7a8b-4c9d-8e0f-2a3b4c5d6e7f:ResponseComplete"
#: (rule title, evidence event id) of each single-event alert of `EVENT_LIST`
EVENT_LIST_ALERTS = {
    ("Kubernetes Admission Webhook Sends Requests Outside the Cluster", WEBHOOK_AUDIT),
    ("Kubernetes Admission Webhook Set to Fail Open", WEBHOOK_AUDIT),
    ("Kubernetes Admission Webhook Configuration Written by a Non-System Identity", WEBHOOK_AUDIT),
    ("Kubernetes Permissions Enumerated by a Service Account", REVIEW_AUDIT),
    ("Kubernetes Workload Runs an Image From an Unapproved Registry", CRONJOB_AUDIT),
    ("Kubernetes Workload Written in a System Namespace by a Non-System Identity", CRONJOB_AUDIT),
}
#: the alert of `public_workflow_job()`
JOB_ALERT = (
    "GitHub Actions Job on a Self-Hosted Runner in a Public Repository",
    "workflow_job:29679449637:1:in_progress",
)


def gitlab_alerts(*events: str) -> set[tuple[str, str]]:
    """The alerts of `gitlab_event(event)` for each of `events`."""
    titles = ("GitLab Protected Branch Removed", "Protected Branch Removed")
    return {(title, event) for title in titles for event in events}


def gitlab_event(event_id: str = "48230", created_at: str | None = None) -> bytes:
    """GitLab's streamed `protected_branch_removed` (fixture record) under `event_id`, at
    `created_at` if given."""
    line = next(
        line
        for line in fixture("gitlab/stream.jsonl").splitlines()
        if b'"protected_branch_removed"' in line
    )
    record = {**orjson.loads(line), "id": event_id}
    if created_at is not None:
        record["created_at"] = created_at
    return orjson.dumps(record)


def gitlab_headers(body: bytes, token: str = GITLAB_TOKEN) -> dict[str, str]:
    """What a GitLab streaming destination is sent."""
    headers = {"Content-Type": "application/json", "X-Gitlab-Event-Streaming-Token": token}
    event_type = orjson.loads(body).get("event_type")
    if isinstance(event_type, str):
        headers["X-Gitlab-Audit-Event-Type"] = event_type
    return headers


def kubernetes_headers(token: str = K8S_TOKEN) -> dict[str, str]:
    """What the API server's audit webhook backend sends (kubeconfig `token`)."""
    return {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}


def public_workflow_job() -> bytes:
    """A `workflow_job` `in_progress` delivery on a self-hosted runner, in a public
    repository: the fixture with the repository's visibility made public."""
    payload = orjson.loads(fixture("github_actions/workflow_job.in_progress.json"))
    payload["repository"].update(private=False, visibility="public")
    return orjson.dumps(payload)


def github_job_headers(body: bytes, delivery: str, secret: str = GITHUB_SECRET) -> dict[str, str]:
    return github_headers(body, "workflow_job", delivery, secret)


def bitbucket_permission_granted() -> bytes:
    """A Bitbucket Data Center audit record: `Global permission granted`."""
    return orjson.dumps(
        {
            "affectedObjects": [{"id": "7", "name": "eve", "type": "USER"}],
            "auditType": {
                "action": "Global permission granted",
                "actionI18nKey": "bitbucket.service.user.audit.action.globalpermissiongranted",
                "area": "PERMISSIONS",
                "category": "Permissions",
                "categoryI18nKey": "bitbucket.service.audit.category.permissions",
                "level": "BASE",
            },
            "author": {"id": "2", "name": "admin", "type": "NORMAL"},
            "changedValues": [],
            "extraAttributes": [
                {
                    "name": "Permission",
                    "nameI18nKey": "bitbucket.service.user.audit.attribute.permission.permission",
                    "value": "SYS_ADMIN",
                }
            ],
            "method": "Browser",
            "node": "8767044c-1b98-4d64-82db-ef29af8c3792",
            "source": "10.100.100.2",
            "system": "http://bitbucket.internal:7990",
            "timestamp": {"epochSecond": 1764148258, "nano": 120000000},
            "version": "1.0",
        }
    )


def bitbucket_headers(body: bytes, msg_id: str, secret: str = BITBUCKET_WHSEC) -> dict[str, str]:
    return standard_headers(body, secret, msg_id)


@dataclass(frozen=True, slots=True)
class Answer:
    """What the intake answered a post."""

    status: int
    headers: CIMultiDict[str]
    text: str


async def post(
    client: aiohttp.ClientSession,
    url: str,
    body: bytes | AsyncIterable[bytes],
    headers: dict[str, str],
    **request: Any,
) -> Answer:
    """POST `body` (chunked when it is an iterable); `request`: aiohttp's options (`ssl`...)."""
    async with client.post(url, data=body, headers=headers, **request) as response:
        return Answer(response.status, CIMultiDict(response.headers), await response.text())


# -- the alert endpoint ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Arrival:
    """One signed alert as the receiver got it, and what it answered."""

    path: str
    status: int
    at: float  # time.monotonic()
    detection: dict[str, Any]


class Receiver:
    """A local alert endpoint on 127.0.0.1: verifies each POST's Standard Webhooks
    signature and that `webhook-id` is the detection's id, answers `status` and keeps
    every arrival. A forged or mismatched alert is counted and refused with 400."""

    def __init__(self, secret: str = WEBHOOK_SECRET) -> None:
        self.port = free_port()
        self.status = 204
        self.arrivals: list[Arrival] = []
        self.forged = 0
        self._verifier = Webhook(secret)
        self._runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        """Listen (again) on the same port."""
        app = web.Application()
        app.router.add_post("/{path:.*}", self._receive)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        """Stop listening: connections are refused until `start` again."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            self._verifier.verify(body, dict(request.headers))
            detection = orjson.loads(body)
        except (WebhookVerificationError, orjson.JSONDecodeError):
            self.forged += 1
            return web.Response(status=400)
        if request.headers.get("webhook-id") != detection.get("id"):
            self.forged += 1
            return web.Response(status=400)
        self.arrivals.append(Arrival(request.path, self.status, time.monotonic(), detection))
        return web.Response(status=self.status)

    def delivered(self, path: str) -> list[dict[str, Any]]:
        """The alerts `path` accepted (answered 2xx), in arrival order."""
        return [a.detection for a in self.arrivals if a.path == path and 200 <= a.status < 300]


def alerts(detections: Iterable[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """(rule title, evidence event id) of each single-event detection, counted. The
    shipped pack's correlations are left out: what they join depends on the pack."""
    return Counter(
        (d["rule"]["title"], d["evidence"][0]["id"]) for d in detections if "window" not in d
    )


# -- the service -----------------------------------------------------------------------


def webhook_output(name: str, url: str) -> dict[str, Any]:
    """A signed webhook sink that retries fast (tests wait on it)."""
    return {
        "name": name,
        "type": "webhook",
        "url": url,
        "secret": {"env": "E2E_WEBHOOK_SECRET"},
        "retry": {"base": 0.05, "cap": 0.2, "deadline": 300},
    }


def service_config(
    directory: Path, outputs: list[dict[str, Any]], intake: dict[str, Any]
) -> dict[str, Any]:
    """A configuration with every file under `directory`, the intake and /metrics on free
    ports of 127.0.0.1, `outputs` as the sinks and Bitbucket declared (`ROUTES` has it)."""
    return {
        "sources": {"declared": [BITBUCKET_SOURCE]},
        "intake": {"host": "127.0.0.1", "port": free_port(), **intake},
        "sinks": {"outbox_dir": str(directory / "outbox"), "outputs": outputs},
        "service": {
            "dead_letter": str(directory / "dead.jsonl"),
            "staging_output": str(directory / "staging.jsonl"),
            "metrics_port": free_port(),
        },
        "correlation": {"checkpoint": str(directory / "state.json")},
    }


class Metrics:
    """One scrape of /metrics."""

    def __init__(self, text: str) -> None:
        self.samples = [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called `name` that carry `labels` (0 when none)."""
        return sum(
            value
            for sample, have, value in self.samples
            if sample == name and labels.items() <= have.items()
        )


class DetectorService:
    """`detector run --config FILE` as a subprocess; its output is kept in log files,
    one per start, so a chatty run can never block on a full pipe. `environ` adds
    variables (secrets) to `SERVICE_ENVIRON`."""

    def __init__(
        self, config: dict[str, Any], directory: Path, environ: Mapping[str, str] | None = None
    ) -> None:
        self.directory = directory
        self.environ = {**os.environ, **SERVICE_ENVIRON, **(environ or {})}
        self.config_path = directory / "detector.yml"
        self.config_path.write_bytes(orjson.dumps(config, option=orjson.OPT_INDENT_2))
        intake = config["intake"]
        self.scheme = "https" if intake.get("tls") else "http"
        self.base = f"{self.scheme}://127.0.0.1:{intake['port']}"
        self.metrics_url = f"http://127.0.0.1:{config['service']['metrics_port']}/metrics"
        self.process: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []
        self._log: IO[bytes] | None = None

    def url(self, route: str) -> str:
        return f"{self.base}/intake/{route}"

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        path = self.directory / f"service-{len(self.logs)}.log"
        self.logs.append(path)
        self._log = path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "detector", "run", "--config", str(self.config_path)],
            env=self.environ,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    async def ready(self, client: aiohttp.ClientSession, **request: Any) -> None:
        """Wait until the intake is ready and /metrics answers; `request`: e.g. `ssl`."""

        async def answers() -> bool:
            assert self.process is not None and self.process.poll() is None, (
                f"detector run exited early:\n{self.output()}"
            )
            try:
                async with client.get(f"{self.base}/readyz", **request) as response:
                    if response.status != 200:
                        return False
                async with client.get(self.metrics_url) as response:
                    return response.status == 200
            except aiohttp.ClientConnectionError:
                return False

        await wait_for(answers, 60, "the service to be ready")

    async def metrics(self, client: aiohttp.ClientSession) -> Metrics:
        async with client.get(self.metrics_url) as response:
            assert response.status == 200
            return Metrics(await response.text())

    async def settled(self, client: aiohttp.ClientSession, records: int) -> bool:
        """This run has processed `records` records and every sink delivered what they made
        (a record's detections are in the outboxes once it counts as read)."""
        metrics = await self.metrics(client)
        return (
            metrics.value("detector_events_in_total") == records
            and metrics.value("detector_sink_outbox_depth") == 0
        )

    async def kill(self) -> None:
        """SIGKILL: a crash, nothing saved on the way out."""
        assert self.process is not None
        self.process.kill()
        await self.stop()

    async def stop(self) -> int:
        """SIGTERM, then wait (without blocking the event loop the receiver runs in) for the
        graceful exit; its return code."""
        process = self.process
        assert process is not None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)

        async def exited() -> bool:
            return process.poll() is not None

        try:
            await wait_for(exited, 60, "detector run to stop")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            if self._log is not None:
                self._log.close()
        return process.returncode

    def output(self) -> str:
        """Everything every start of the service printed."""
        return "".join(path.read_text(encoding="utf-8", errors="replace") for path in self.logs)
