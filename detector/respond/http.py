"""The `/actions` routes of the live service: list, approve, reject, undo.

Served on the intake's listener (and its TLS). Each approver has their own bearer token
(`responders.approvers`); the name of the approver whose token matches is what the
audit trail records, never a name the client sends. Bodies are optional
(`{"reason": "..."}` on a rejection) and bounded by `max_request_bytes`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import orjson
from aiohttp import web

from detector.intake.auth import BearerToken
from detector.respond.audit import ActionRecord, overview
from detector.respond.responder import Responder, ResponderError, UnknownActionError
from detector.respond.settings import RespondersSettings

Handler = Callable[[web.Request], Awaitable[web.Response]]


def add_action_routes(
    app: web.Application,
    responder: Responder,
    settings: RespondersSettings,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Add the routes to `app` (before it starts); secrets are read now."""
    approvers = [(a.name, BearerToken(a.token.read(environ))) for a in settings.approvers]
    limit = settings.max_request_bytes

    def authenticated(handler: Callable[[web.Request, str], Awaitable[web.Response]]) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            # every token is compared, so the time taken does not say which one matched
            matches = [name for name, token in approvers if token.check_headers(request.headers)]
            if not matches:
                return web.Response(status=401, text="missing or invalid credentials\n")
            if request.content_length is not None and request.content_length > limit:
                return web.Response(status=413, text=f"the body is over {limit} bytes\n")
            try:
                return await handler(request, matches[0])
            except _BadRequest as exc:
                return web.Response(status=400, text=f"{exc}\n")
            except UnknownActionError as exc:
                return web.Response(status=404, text=f"{exc}\n")
            except ResponderError as exc:
                return web.Response(status=409, text=f"{exc}\n")

        return handle

    async def listing(request: web.Request, approver: str) -> web.Response:
        status = request.query.get("status")
        responder.expire()
        rows = responder.store.listing(status)
        return _json([overview(row) for row in rows])

    async def approve(request: web.Request, approver: str) -> web.Response:
        return _records(await responder.approve(request.match_info["id"], approver))

    async def reject(request: web.Request, approver: str) -> web.Response:
        reason = await _reason(request, limit)
        return _records(responder.reject(request.match_info["id"], approver, reason))

    async def undo(request: web.Request, approver: str) -> web.Response:
        return _records([await responder.undo(request.match_info["id"], approver)])

    app.router.add_get("/actions", authenticated(listing))
    app.router.add_post("/actions/{id}/approve", authenticated(approve))
    app.router.add_post("/actions/{id}/reject", authenticated(reject))
    app.router.add_post("/actions/{id}/undo", authenticated(undo))


class _BadRequest(Exception):
    """A body that cannot be read as a decision (400)."""


async def _reason(request: web.Request, limit: int) -> str:
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise _BadRequest(f"the body is over {limit} bytes")
    if not body.strip():
        return ""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _BadRequest("the body is not JSON") from None
    reason = document.get("reason", "") if isinstance(document, dict) else ""
    return str(reason)[:500]


def _records(records: list[ActionRecord]) -> web.Response:
    return _json([orjson.loads(record.to_json()) for record in records])


def _json(value: object) -> web.Response:
    return web.Response(body=orjson.dumps(value), content_type="application/json")
