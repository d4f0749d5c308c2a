"""The intake's aiohttp application: one authenticated POST route per source.

A request passes these gates in order, and nothing of it reaches the queue unless it
passes them all:

1. draining → 503 with `Retry-After`;
2. client certificate (where the route requires one), then the header credential →
   401, before any of the body is read;
3. declared `Content-Length` over the limit → 413; too many bodies being read → 429;
4. the body, read up to the limit + 1 byte (413 past the limit, 408 when too slow, 400
   when its transfer or content encoding is broken or the client left);
5. the body's signature (GitHub, Standard Webhooks) → 401;
6. the body split into raw records and offered to the queue as one batch: 202 when
   all of it is queued, 429 with `Retry-After` when it does not fit now, 413 when it
   never would.

Origins are `http:<source>:<id>`, the id being the sender's delivery id (GitHub's
`X-GitHub-Delivery`, Standard Webhooks' `webhook-id`) or a generated request id, also
returned as `X-Request-Id`. The normalize stage adds `#n` to each item of an envelope
(a Kubernetes `EventList`); generic bodies are split the way files are, so their
records end in `:line` or `@offset`. Logs name the route, the outcome, the request id
and the peer, never a credential.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry

from detector.intake.auth import (
    GITLAB_TOKEN,
    WEBHOOK_ID,
    BearerToken,
    Credential,
    GitHubSignature,
    HeaderToken,
    StandardWebhookSignature,
)
from detector.intake.metrics import IntakeMetrics
from detector.intake.queue import QueueClosedError, RecordQueue, footprint
from detector.intake.settings import IntakeConfigError, IntakeSettings, RouteSettings
from detector.secrets import SecretError
from detector.sources.files import read_stream
from detector.sources.records import RawRecord

log = logging.getLogger("detector.intake")

GITHUB_DELIVERY = "X-GitHub-Delivery"
GITHUB_EVENT = "X-GitHub-Event"
#: GitHub events whose payloads are the `github_actions` source
ACTIONS_EVENTS = frozenset({"workflow_run", "workflow_job"})
#: a sender's delivery id is used in origins only when it looks like one
_DELIVERY_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")

#: (headers, body, request id) → the records of the body, or None to ignore it
Splitter = Callable[[Mapping[str, str], bytes, str], Iterable[RawRecord] | None]


class Rejected(Exception):
    """A request refused before any of it was queued."""

    def __init__(self, status: int, outcome: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.outcome = outcome


@dataclass(frozen=True, slots=True)
class Route:
    """One served route: its metric label, credential and how its bodies become records."""

    name: str
    path: str
    credential: Credential
    require_client_cert: bool
    id_header: str | None
    split: Splitter


class Intake:
    """What the routes share: the limits, the queue, the metrics and the draining flag."""

    def __init__(
        self, settings: IntakeSettings, queue: RecordQueue, metrics: IntakeMetrics
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.metrics = metrics
        self.draining = False
        self._reading = 0

    def drain(self) -> None:
        """Answer 503 to new requests (and not ready) from now on; requests in flight finish."""
        self.draining = True

    async def handle(self, request: web.Request, route: Route) -> web.Response:
        request_id = _request_id(request.headers, route.id_header)
        headers = {"X-Request-Id": request_id}
        try:
            records = await self._admit(request, route, request_id)
        except Rejected as rejected:
            self.metrics.requests_for(route.name, rejected.outcome).inc()
            level = logging.WARNING if rejected.status == 401 else logging.INFO
            log.log(
                level,
                "intake %s: rejected %s (%d) request %s from %s",
                route.name,
                rejected.outcome,
                rejected.status,
                request_id,
                request.remote,
            )
            if rejected.status in (429, 503):
                headers["Retry-After"] = str(self.settings.retry_after_seconds)
            return web.Response(status=rejected.status, text=f"{rejected}\n", headers=headers)
        if records is None:
            self.metrics.requests_for(route.name, "ignored").inc()
            log.debug("intake %s: ignored request %s", route.name, request_id)
            return web.Response(status=204, headers=headers)
        self.metrics.requests_for(route.name, "accepted").inc()
        self.metrics.records_for(route.name).inc(len(records))
        log.debug(
            "intake %s: accepted %d records, request %s", route.name, len(records), request_id
        )
        body = b'{"accepted": %d}' % len(records)  # what json_response wrote
        return web.Response(body=body, status=202, headers=headers, content_type="application/json")

    async def _admit(
        self, request: web.Request, route: Route, request_id: str
    ) -> Sequence[RawRecord] | None:
        """The queued records of an accepted request, None if ignored; else `Rejected`."""
        if self.draining or self.queue.closed:
            raise Rejected(503, "shutting_down", "shutting down")
        if route.require_client_cert and not _has_client_certificate(request):
            raise Rejected(401, "unauthorized", "a client certificate is required")
        if not route.credential.check_headers(request.headers):
            raise Rejected(401, "unauthorized", "missing or invalid credentials")
        limit = self.settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise Rejected(413, "too_large", f"the body is larger than {limit} bytes")
        if self._reading >= self.settings.max_concurrent_requests:
            raise Rejected(429, "busy", "too many requests in progress")
        self._reading += 1
        try:
            body = await self._read_body(request)
        finally:
            self._reading -= 1
        if not route.credential.check_body(request.headers, body):
            raise Rejected(401, "unauthorized", "missing or invalid credentials")
        if not body or body.isspace():
            raise Rejected(400, "empty", "the body is empty")
        records = route.split(request.headers, body, request_id)
        if records is None:
            return None
        batch = self._bounded_batch(records)
        try:
            accepted = self.queue.offer(batch)
        except QueueClosedError:
            raise Rejected(503, "shutting_down", "shutting down") from None
        if not accepted:
            raise Rejected(429, "queue_full", "the queue is full")
        return batch

    async def _read_body(self, request: web.Request) -> bytes:
        """The body, never holding more than the limit + 1 byte of it."""
        limit = self.settings.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.settings.body_timeout_seconds):
                while chunk := await request.content.read(limit + 1 - size):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > limit:
                        raise Rejected(413, "too_large", f"the body is larger than {limit} bytes")
        except TimeoutError:
            raise Rejected(408, "timeout", "the body was not received in time") from None
        except web.RequestPayloadError:  # broken chunking or Content-Encoding
            raise Rejected(400, "bad_body", "the body cannot be decoded") from None
        except ConnectionResetError:
            raise Rejected(400, "disconnected", "the client left before sending its body") from None
        return b"".join(chunks)

    def _bounded_batch(self, records: Iterable[RawRecord]) -> list[RawRecord]:
        """The records as a list, stopping as soon as they could never fit in the queue."""
        batch: list[RawRecord] = []
        cost = 0
        for record in records:
            cost += footprint(record)
            if cost > self.queue.capacity:
                raise Rejected(413, "too_large", "the records exceed the queue capacity")
            batch.append(record)
        return batch

    async def healthz(self, request: web.Request) -> web.Response:
        """Liveness: the process answers."""
        return web.Response(text="ok\n")

    async def readyz(self, request: web.Request) -> web.Response:
        """Readiness: accepting requests, not draining."""
        if self.draining or self.queue.closed:
            return web.Response(status=503, text="draining\n")
        return web.Response(text="ready\n")


INTAKE = web.AppKey("intake", Intake)


def create_app(
    settings: IntakeSettings,
    queue: RecordQueue,
    *,
    sources: Collection[str],
    registry: CollectorRegistry,
    environ: Mapping[str, str] | None = None,
) -> web.Application:
    """The intake application: a route per configured source, `/healthz` and `/readyz`.

    `sources` are the names the pipeline knows (built-in and declared); a generic route
    for any other name is a configuration error, as is a secret that cannot be read
    (`IntakeConfigError`). Secrets are read here, from `environ` (default: the process
    environment) or files. Metrics are registered in `registry`.
    """
    routes = _routes(settings, sources, os.environ if environ is None else environ)
    intake = Intake(settings, queue, IntakeMetrics(registry, queue, [r.name for r in routes]))
    app = web.Application()
    app[INTAKE] = intake
    app.router.add_get("/healthz", intake.healthz)
    app.router.add_get("/readyz", intake.readyz)
    for route in routes:
        app.router.add_post(route.path, _handler(intake, route))
    app.on_shutdown.append(_drain)
    return app


def _routes(
    settings: IntakeSettings, sources: Collection[str], environ: Mapping[str, str]
) -> list[Route]:
    routes: list[Route] = []
    for name, route in settings.routes().items():
        try:
            secret = route.secret.read(environ)
            match name:
                case "kubernetes":
                    routes.append(_route(name, BearerToken(secret), route, None, _single(name)))
                case "gitlab":
                    token = HeaderToken(GITLAB_TOKEN, secret)
                    routes.append(_route(name, token, route, None, _single(name)))
                case "github":
                    signature = GitHubSignature(secret)
                    routes.append(_route(name, signature, route, GITHUB_DELIVERY, _github))
                case _:
                    source = name.removeprefix("generic/")
                    if source not in sources:
                        raise IntakeConfigError(f"unknown source {source!r}")
                    signed = StandardWebhookSignature(secret, settings.webhook_tolerance_seconds)
                    routes.append(_route(name, signed, route, WEBHOOK_ID, _generic(source)))
        except (IntakeConfigError, SecretError) as exc:
            raise IntakeConfigError(f"intake route {name}: {exc}") from None
    return routes


def _route(
    name: str,
    credential: Credential,
    settings: RouteSettings,
    id_header: str | None,
    split: Splitter,
) -> Route:
    return Route(
        name, f"/intake/{name}", credential, settings.require_client_cert, id_header, split
    )


def _single(source: str) -> Splitter:
    """The body is one document of `source` (an `EventList` counts as one)."""

    def split(headers: Mapping[str, str], body: bytes, request_id: str) -> Iterable[RawRecord]:
        return (RawRecord(body, f"http:{source}:{request_id}", source),)

    return split


def _github(headers: Mapping[str, str], body: bytes, request_id: str) -> Iterable[RawRecord] | None:
    """A webhook delivery: `ping` is ignored; Actions events are `github_actions` records,
    other events are detected by their shape like any record of unknown source."""
    event = headers.get(GITHUB_EVENT, "")
    if event == "ping":
        return None
    source = "github_actions" if event in ACTIONS_EVENTS else None
    return (RawRecord(body, f"http:github:{request_id}", source),)


def _generic(source: str) -> Splitter:
    """A record, a JSON array or JSON lines of `source`, split as a file would be."""

    def split(headers: Mapping[str, str], body: bytes, request_id: str) -> Iterable[RawRecord]:
        # The signature check only passes UTF-8 text, so the reader never meets gzip (a
        # compressed body comes with Content-Encoding and counts against the limit).
        return read_stream(io.BytesIO(body), f"http:{source}:{request_id}", source=source)

    return split


def _handler(intake: Intake, route: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        return await intake.handle(request, route)

    return handle


async def _drain(app: web.Application) -> None:
    app[INTAKE].drain()


def _request_id(headers: Mapping[str, str], id_header: str | None) -> str:
    delivery = headers.get(id_header, "") if id_header else ""
    return delivery if _DELIVERY_ID.fullmatch(delivery) else uuid.uuid4().hex


def _has_client_certificate(request: web.Request) -> bool:
    transport = request.transport
    return transport is not None and bool(transport.get_extra_info("peercert"))
