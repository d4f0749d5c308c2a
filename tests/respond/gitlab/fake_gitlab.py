"""A stateful GitLab REST v4 fake, checked against the contract in `api_contract.json`.

The contract is written from GitLab's REST documentation pages (see its `source`). Codes the
docs give for every endpoint are allowed everywhere: 401 (bad token), 403, 404, 429 with
Retry-After (rate limits page) and 5xx.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.respond.actions.base import SystemConnection
from detector.secrets import SecretRef
from tests.respond.contract_server import (
    Call,
    ContractServer,
    Handler,
    Operation,
    Reply,
    load_operations,
)

TOKEN = "glpat-" + "R3sp0nd3rT0k3n" * 2
GLOBAL_CODES = frozenset({401, 403, 404, 429, 500, 502, 503})


def operations() -> list[Operation]:
    return load_operations(Path(__file__).with_name("api_contract.json"))


def check_headers(operation_id: str, headers: Mapping[str, str], anonymous: bool) -> list[str]:
    """Every call authenticates with the PRIVATE-TOKEN header."""
    if not headers.get("PRIVATE-TOKEN"):
        return ["no PRIVATE-TOKEN header"]
    return []


def error(status: int, message: str) -> Reply:
    return Reply(status, {"message": message})


def token(token_id: int, *, revoked: bool = False) -> dict[str, Any]:
    return {"id": token_id, "name": f"t{token_id}", "revoked": revoked, "active": not revoked}


@dataclass
class FakeGitLab:
    """Project 5 (`acme/app`), group 3 (`acme`), users, runners and pipelines."""

    server: ContractServer
    personal_tokens: dict[int, dict[str, Any]] = field(
        default_factory=lambda: {41: token(41), 42: token(42, revoked=True)}
    )
    project_tokens: dict[int, dict[str, Any]] = field(default_factory=lambda: {51: token(51)})
    group_tokens: dict[int, dict[str, Any]] = field(default_factory=lambda: {61: token(61)})
    users: dict[int, str] = field(
        default_factory=lambda: {7: "active", 8: "ldap_blocked", 9: "active"}
    )
    internal_users: set[int] = field(default_factory=lambda: {9})
    runners: dict[int, bool] = field(default_factory=lambda: {30: False, 31: True})
    pipelines: dict[int, str] = field(default_factory=lambda: {900: "running", 901: "success"})
    schedules: dict[int, bool] = field(default_factory=lambda: {1: True, 2: False, 3: True})

    def finish_cancellations(self) -> None:
        """What GitLab does once the runners have stopped the jobs."""
        for pipeline, status in self.pipelines.items():
            if status == "canceling":
                self.pipelines[pipeline] = "canceled"


PROJECTS = ("5", "acme/app")
GROUPS = ("3", "acme")


def install_handlers(fake: FakeGitLab) -> None:
    s = fake.server

    def guarded(operation_id: str, scope: tuple[str, ...] = ()) -> Callable[[Handler], Handler]:
        """401 for a wrong token, 404 for a project or group that does not exist."""

        def refuse(call: Call) -> Reply | None:
            if call.headers.get("PRIVATE-TOKEN") != TOKEN:
                return error(401, "401 Unauthorized")
            if scope and call.path_params["id"] not in scope:
                return error(404, "404 Project Not Found")
            return None

        return s.handle(operation_id, refuse)

    def token_handlers(
        prefix: str, tokens: dict[int, dict[str, Any]], scope: tuple[str, ...]
    ) -> None:
        key = "id" if prefix == "personal_access_tokens" else "token_id"

        @guarded(f"{prefix}/get", scope)
        def _(call: Call) -> Reply:
            found = tokens.get(int(call.path_params[key]))
            return error(404, "404 Not Found") if found is None else Reply(200, found)

        @guarded(f"{prefix}/revoke", scope)
        def _(call: Call) -> Reply:
            found = tokens.get(int(call.path_params[key]))
            if found is None:
                return error(404, "404 Not Found")
            if found["revoked"]:
                return error(400, "400 Bad request - Token already revoked")
            found.update(revoked=True, active=False)
            return Reply(204)

    token_handlers("personal_access_tokens", fake.personal_tokens, ())
    token_handlers("project_access_tokens", fake.project_tokens, PROJECTS)
    token_handlers("group_access_tokens", fake.group_tokens, GROUPS)

    def user_or_404(call: Call) -> int | None:
        user = int(call.path_params["id"])
        return user if user in fake.users else None

    @guarded("users/get")
    def _(call: Call) -> Reply:
        user = user_or_404(call)
        if user is None:
            return error(404, "404 User Not Found")
        return Reply(200, {"id": user, "username": f"user{user}", "state": fake.users[user]})

    @guarded("users/block")
    def _(call: Call) -> Reply:
        user = user_or_404(call)
        if user is None:
            return error(404, "404 User Not Found")
        if fake.users[user] == "ldap_blocked" or user in fake.internal_users:
            return error(403, "403 Forbidden - An internal user cannot be blocked")
        fake.users[user] = "blocked"
        return Reply(201, True)

    @guarded("users/unblock")
    def _(call: Call) -> Reply:
        user = user_or_404(call)
        if user is None:
            return error(404, "404 User Not Found")
        if fake.users[user] == "ldap_blocked":
            return error(403, "403 Forbidden - LDAP blocked users cannot be unblocked by the API")
        fake.users[user] = "active"
        return Reply(201, True)

    def runner_json(runner: int) -> dict[str, Any]:
        paused = fake.runners[runner]
        return {"id": runner, "paused": paused, "active": not paused, "status": "online"}

    @guarded("runners/get")
    def _(call: Call) -> Reply:
        runner = int(call.path_params["id"])
        if runner not in fake.runners:
            return error(404, "404 Runner Not Found")
        return Reply(200, runner_json(runner))

    @guarded("runners/update")
    def _(call: Call) -> Reply:
        runner = int(call.path_params["id"])
        if runner not in fake.runners:
            return error(404, "404 Runner Not Found")
        if "paused" in call.body:
            fake.runners[runner] = call.body["paused"]
        return Reply(200, runner_json(runner))

    def pipeline_json(pipeline: int) -> dict[str, Any]:
        return {"id": pipeline, "project_id": 5, "status": fake.pipelines[pipeline]}

    @guarded("pipelines/get", PROJECTS)
    def _(call: Call) -> Reply:
        pipeline = int(call.path_params["pipeline_id"])
        if pipeline not in fake.pipelines:
            return error(404, "404 Not found")
        return Reply(200, pipeline_json(pipeline))

    @guarded("pipelines/cancel", PROJECTS)
    def _(call: Call) -> Reply:
        pipeline = int(call.path_params["pipeline_id"])
        if pipeline not in fake.pipelines:
            return error(404, "404 Not found")
        if fake.pipelines[pipeline] in ("running", "pending", "created"):
            fake.pipelines[pipeline] = "canceling"
        return Reply(200, pipeline_json(pipeline))  # 200 whatever the state, as documented

    @guarded("pipeline_schedules/list", PROJECTS)
    def _(call: Call) -> Reply:
        number, size = int(call.query.get("page", 1)), int(call.query.get("per_page", 20))
        items = [
            {"id": sid, "description": f"nightly {sid}", "active": active}
            for sid, active in sorted(fake.schedules.items())
        ]
        headers = {"X-Page": str(number), "X-Per-Page": str(size), "X-Total": str(len(items))}
        if number * size < len(items):
            url = f"{s.url}/api/v4/projects/5/pipeline_schedules?page={number + 1}&per_page={size}"
            headers["Link"] = f'<{url}>; rel="next"'
            headers["X-Next-Page"] = str(number + 1)
        return Reply(200, items[(number - 1) * size : number * size], headers)

    @guarded("pipeline_schedules/edit", PROJECTS)
    def _(call: Call) -> Reply:
        schedule = int(call.path_params["pipeline_schedule_id"])
        if schedule not in fake.schedules:
            return error(404, "404 Not found")
        if "active" in call.body:
            fake.schedules[schedule] = call.body["active"]
        return Reply(200, {"id": schedule, "active": fake.schedules[schedule]})


def connection(fake: FakeGitLab) -> SystemConnection:
    return SystemConnection(url=fake.server.url, token=SecretRef(env="GITLAB_RESPONDER_TOKEN"))


def new_fake() -> FakeGitLab:
    """A fake with its handlers, not yet serving (see `contract_server.serve`)."""
    server = ContractServer(
        operations(), base_path="/api/v4", header_check=check_headers, global_codes=GLOBAL_CODES
    )
    fake = FakeGitLab(server)
    install_handlers(fake)
    return fake
