"""The drill's intake client against a local server that checks each request the way the
intake does: a full queue (429) is retried after its Retry-After, a refusal is an error."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from detector.drill.client import IntakeClient, IntakeError
from detector.intake.auth import GITLAB_TOKEN

TOKEN = "gitlab-verification-token"
RECORD = b'{"id": 1, "created_at": "2025-03-03T00:00:00Z", "event_type": "x"}'


async def serve(answers: list[int]) -> tuple[TestServer, list[bytes]]:
    """A GitLab intake route answering `answers` in turn (the last one for ever after)."""
    bodies: list[bytes] = []

    async def intake(request: web.Request) -> web.Response:
        assert request.headers[GITLAB_TOKEN] == TOKEN
        bodies.append(await request.read())
        status = answers.pop(0) if len(answers) > 1 else answers[0]
        headers = {"Retry-After": "0"} if status == 429 else {}
        return web.Response(
            status=status, text="queue full" if status == 429 else "", headers=headers
        )

    app = web.Application()
    app.router.add_post("/intake/gitlab", intake)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server, bodies


async def test_a_full_queue_is_retried_until_accepted() -> None:
    server, bodies = await serve([429, 429, 202])
    try:
        async with aiohttp.ClientSession() as session:
            client = IntakeClient(session, str(server.make_url("/")), {"gitlab": TOKEN})
            await client.send("gitlab", RECORD)
    finally:
        await server.close()
    assert bodies == [RECORD] * 3


async def test_a_refusal_is_an_error_naming_the_route() -> None:
    server, bodies = await serve([401])
    try:
        async with aiohttp.ClientSession() as session:
            client = IntakeClient(session, str(server.make_url("/")), {"gitlab": TOKEN})
            with pytest.raises(IntakeError, match=r"/intake/gitlab answered 401"):
                await client.send("gitlab", RECORD)
    finally:
        await server.close()
    assert bodies == [RECORD]
