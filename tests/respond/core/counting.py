"""A test-only system: an aiohttp server on 127.0.0.1 that blocks users and counts every
call, and the actions that talk to it (registered as `test.block` and `test.wipe`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar

import aiohttp
from aiohttp import web
from pydantic import BaseModel

from detector.detections import Detection, Evidence, RuleRef
from detector.respond.actions.base import (
    Action,
    ActionError,
    ActionOutcome,
    Target,
    register,
    registered,
)


@dataclass
class FakeSystem:
    """What the server knows: blocked users, calls by route, and scripted trouble."""

    blocked: set[str] = field(default_factory=set)
    calls: Counter[str] = field(default_factory=Counter)
    failures_before_success: int = 0  # 503s answered to execute calls first
    reads_before_visible: int = 0  # verify reads that do not see the effect yet

    @property
    def changes(self) -> int:
        return self.calls["block"] + self.calls["unblock"] + self.calls["wipe"]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_put("/blocks/{user}", self._block)
        app.router.add_get("/blocks/{user}", self._read)
        app.router.add_delete("/blocks/{user}", self._unblock)
        app.router.add_post("/wipe/{user}", self._wipe)
        return app

    async def _block(self, request: web.Request) -> web.Response:
        self.calls["block"] += 1
        if self.failures_before_success > 0:
            self.failures_before_success -= 1
            return web.Response(status=503)
        user = request.match_info["user"]
        already = user in self.blocked
        self.blocked.add(user)
        return web.json_response({"already": already})

    async def _read(self, request: web.Request) -> web.Response:
        self.calls["read"] += 1
        if self.reads_before_visible > 0:
            self.reads_before_visible -= 1
            return web.json_response({"blocked": False})
        return web.json_response({"blocked": request.match_info["user"] in self.blocked})

    async def _unblock(self, request: web.Request) -> web.Response:
        self.calls["unblock"] += 1
        self.blocked.discard(request.match_info["user"])
        return web.Response(status=204)

    async def _wipe(self, request: web.Request) -> web.Response:
        self.calls["wipe"] += 1
        return web.Response(status=202)


@asynccontextmanager
async def serving(system: FakeSystem) -> AsyncIterator[str]:
    """The system's server on a free port; its base URL."""
    runner = web.AppRunner(system.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class UserParams(BaseModel):
    user: str


class _TestAction(Action[UserParams]):
    system: ClassVar[str] = "test"
    permissions: ClassVar[tuple[str, ...]] = ("block",)
    params_model: ClassVar[type[BaseModel]] = UserParams

    def targets(self, params: UserParams) -> list[Target]:
        return [Target(kind="identity", system="test", name=params.user)]

    async def _call(self, method: str, path: str) -> aiohttp.ClientResponse:
        async with aiohttp.ClientSession() as session:
            response = await session.request(method, self.connection.url + path)
            await response.read()
            if response.status >= 500:
                raise ActionError("server error", status=response.status, retryable=True)
            if response.status >= 400:
                raise ActionError("refused", status=response.status)
            return response


class BlockUser(_TestAction):
    name: ClassVar[str] = "test.block"
    description: ClassVar[str] = "Block a user of the test system."
    reversible: ClassVar[bool] = True

    async def execute(self, params: UserParams) -> ActionOutcome:
        response = await self._call("PUT", f"/blocks/{params.user}")
        already = (await response.json())["already"]
        return ActionOutcome(state="already_done" if already else "done", undo_state={})

    async def verify(self, params: UserParams) -> bool:
        response = await self._call("GET", f"/blocks/{params.user}")
        return bool((await response.json())["blocked"])

    async def undo(self, params: UserParams, outcome: ActionOutcome) -> ActionOutcome:
        await self._call("DELETE", f"/blocks/{params.user}")
        return ActionOutcome(state="done", detail="unblocked")


class WipeUser(_TestAction):
    name: ClassVar[str] = "test.wipe"
    description: ClassVar[str] = "Wipe a user's data: cannot be undone."
    reversible: ClassVar[bool] = False

    async def execute(self, params: UserParams) -> ActionOutcome:
        await self._call("POST", f"/wipe/{params.user}")
        return ActionOutcome(state="done")

    async def verify(self, params: UserParams) -> bool:
        return True


for _action in (BlockUser, WipeUser):
    if _action.name not in registered():
        register(_action)

RULE = RuleRef(
    id="b3aa8717-eaf3-4b5d-945c-1fb9c018d169",
    title="Token used from a new address",
    level="high",
    tags=["attack.initial_access", "attack.t1078"],
)


def detection(n: int = 1, actor: str = "mallory", rule: RuleRef = RULE) -> Detection:
    return Detection(
        id=f"det-{n}",
        timestamp=datetime(2025, 3, 10, 12, 0, n % 60, tzinfo=UTC),
        rule=rule,
        group={"user.name": actor},
        evidence=[
            Evidence(
                id=f"evt-{n}",
                timestamp=datetime(2025, 3, 10, 12, 0, n % 60, tzinfo=UTC),
                source="github",
                action="git.clone",
                actor=actor,
            )
        ],
        message=f"{rule.title}: {actor}",
    )
