"""A stateful GitHub REST fake, checked against GitHub's published OpenAPI description.

`openapi_subset.json` is the part of the description the actions use (see
extract_openapi.py for its source and licence). Status codes that the description leaves to
its general pages are allowed for every operation: 401 and 404 (troubleshooting page: GitHub
answers 404 for what the credential cannot see), 403/429 with `retry-after` or
`x-ratelimit-remaining: 0` (rate-limit page), and 5xx.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson

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

SUBSET = orjson.loads(Path(__file__).with_name("openapi_subset.json").read_bytes())
API_VERSION = SUBSET["api_version"]
TOKEN = "ghs_" + "A1b2C3d4" * 5  # the responder's installation token
GLOBAL_CODES = frozenset({401, 403, 404, 429, 500, 502, 503})


def operations() -> list[Operation]:
    return load_operations(Path(__file__).with_name("openapi_subset.json"))


def check_headers(operation_id: str, headers: Mapping[str, str], anonymous: bool) -> list[str]:
    """REST API conventions: the versioned media type, the version header, a bearer token."""
    problems = []
    if "application/vnd.github+json" not in headers.get("Accept", ""):
        problems.append(f"Accept {headers.get('Accept')!r}")
    if headers.get("X-GitHub-Api-Version") != API_VERSION:
        problems.append(f"X-GitHub-Api-Version {headers.get('X-GitHub-Api-Version')!r}")
    auth = headers.get("Authorization")
    if anonymous and auth is not None:
        problems.append("an Authorization header on an unauthenticated call")
    if not anonymous and (auth is None or auth.split(" ")[0].lower() not in ("bearer", "token")):
        problems.append("no bearer/token Authorization header")
    return problems


def error(status: int, message: str) -> Reply:
    return Reply(status, {"message": message, "documentation_url": "https://docs.github.com/rest"})


@dataclass
class FakeGitHub:
    """What the fake organization `acme` and repository `acme/app` hold."""

    server: ContractServer
    pat_grants: dict[int, str] = field(default_factory=lambda: {11: "mallory", 12: "alice"})
    live_credentials: set[str] = field(default_factory=set)
    workflows: dict[str, str] = field(
        default_factory=lambda: {"deploy.yml": "active", "old.yml": "disabled_manually"}
    )
    runs: dict[int, str] = field(default_factory=lambda: {501: "in_progress", 502: "completed"})
    cancelling: set[int] = field(default_factory=set)
    uncancellable: set[int] = field(default_factory=set)
    repo_runners: dict[int, bool] = field(default_factory=lambda: {7: False, 8: True})
    org_runners: dict[int, bool] = field(default_factory=lambda: {70: False})
    blocks: set[str] = field(default_factory=set)
    members: set[str] = field(default_factory=lambda: {"alice"})
    outside_collaborators: list[str] = field(default_factory=lambda: ["mallory", "bob"])
    deploy_keys: dict[int, dict[str, object]] = field(default_factory=dict)
    key_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(100))

    def finish_cancellations(self) -> None:
        """What GitHub does some time after answering 202 to a cancel."""
        for run in self.cancelling:
            self.runs[run] = "completed"
        self.cancelling.clear()

    def add_deploy_key(self, title: str, key: str, read_only: bool) -> dict[str, object]:
        key_id = next(self.key_ids)
        record = {"id": key_id, "title": title, "key": key, "read_only": read_only}
        self.deploy_keys[key_id] = record
        return record


def page(fake: FakeGitHub, call: Call, path: str, items: list[object]) -> Reply:
    """One page of a list, with GitHub's `Link: <...>; rel="next"` when more follow."""
    number, size = int(call.query.get("page", 1)), int(call.query.get("per_page", 30))
    headers = {}
    if number * size < len(items):
        url = f"{fake.server.url}/api/v3{path}?per_page={size}&page={number + 1}"
        headers["Link"] = f'<{url}>; rel="next"'
    return Reply(200, items[(number - 1) * size : number * size], headers)


def _authorized(call: Call) -> bool:
    return call.headers.get("Authorization", "").split(" ")[-1] == TOKEN


def install_handlers(fake: FakeGitHub) -> None:
    s = fake.server

    def unauthorized(call: Call) -> Reply | None:
        return None if _authorized(call) else error(401, "Bad credentials")

    def guarded(operation_id: str) -> Callable[[Handler], Handler]:
        return s.handle(operation_id, unauthorized)

    @guarded("orgs/update-pat-access")
    def _(call: Call) -> Reply:
        pat = int(call.path_params["pat_id"])
        if fake.pat_grants.pop(pat, None) is None:
            return error(404, "Not Found")
        return Reply(204)

    @guarded("orgs/list-pat-grants")
    def _(call: Call) -> Reply:
        grants = [
            {"id": pat, "owner": {"login": who}} for pat, who in sorted(fake.pat_grants.items())
        ]
        return page(fake, call, "/orgs/acme/personal-access-tokens", list(grants))

    @s.handle("credentials/revoke")
    def _(call: Call) -> Reply:
        fake.live_credentials.difference_update(call.body["credentials"])
        return Reply(202, {})

    @s.handle("users/get-authenticated")
    def _(call: Call) -> Reply:
        token = call.headers.get("Authorization", "").split(" ")[-1]
        if token in fake.live_credentials:
            return Reply(200, {"login": "mallory", "id": 9})
        return error(401, "Bad credentials")

    @guarded("actions/get-workflow")
    def _(call: Call) -> Reply:
        state = fake.workflows.get(call.path_params["workflow_id"])
        return error(404, "Not Found") if state is None else Reply(200, {"id": 1, "state": state})

    def set_workflow(state: str):  # type: ignore[no-untyped-def]
        def handler(call: Call) -> Reply:
            if call.path_params["workflow_id"] not in fake.workflows:
                return error(404, "Not Found")
            fake.workflows[call.path_params["workflow_id"]] = state
            return Reply(204)

        return handler

    guarded("actions/disable-workflow")(set_workflow("disabled_manually"))
    guarded("actions/enable-workflow")(set_workflow("active"))

    def cancel(call: Call) -> Reply:
        run = int(call.path_params["run_id"])
        if run not in fake.runs:
            return error(404, "Not Found")
        if fake.runs[run] == "completed" or run in fake.uncancellable:
            return error(409, "Cannot cancel a workflow run that is completed.")
        fake.cancelling.add(run)
        return Reply(202, {})

    guarded("actions/cancel-workflow-run")(cancel)
    guarded("actions/force-cancel-workflow-run")(cancel)

    @guarded("actions/get-workflow-run")
    def _(call: Call) -> Reply:
        status = fake.runs.get(int(call.path_params["run_id"]))
        return error(404, "Not Found") if status is None else Reply(200, {"status": status})

    def runners_of(call: Call) -> dict[int, bool]:
        return fake.repo_runners if "repo" in call.path_params else fake.org_runners

    def get_runner(call: Call) -> Reply:
        runner = int(call.path_params["runner_id"])
        if runner not in runners_of(call):
            return error(404, "Not Found")
        return Reply(200, {"id": runner, "busy": runners_of(call)[runner]})

    def delete_runner(call: Call) -> Reply:
        runners, runner = runners_of(call), int(call.path_params["runner_id"])
        if runner not in runners:
            return error(404, "Not Found")
        if runners[runner]:
            return error(422, "Validation Failed: the runner is running a job")
        del runners[runner]
        return Reply(204)

    guarded("actions/get-self-hosted-runner-for-repo")(get_runner)
    guarded("actions/get-self-hosted-runner-for-org")(get_runner)
    guarded("actions/delete-self-hosted-runner-from-repo")(delete_runner)
    guarded("actions/delete-self-hosted-runner-from-org")(delete_runner)

    @guarded("orgs/check-blocked-user")
    def _(call: Call) -> Reply:
        blocked = call.path_params["username"] in fake.blocks
        return Reply(204) if blocked else error(404, "Not Found")

    @guarded("orgs/block-user")
    def _(call: Call) -> Reply:
        if call.path_params["username"] in fake.members:
            return error(422, "Validation Failed: cannot block an organization member")
        fake.blocks.add(call.path_params["username"])
        return Reply(204)

    @guarded("orgs/unblock-user")
    def _(call: Call) -> Reply:
        fake.blocks.discard(call.path_params["username"])
        return Reply(204)

    @guarded("orgs/list-outside-collaborators")
    def _(call: Call) -> Reply:
        users = [{"login": login} for login in fake.outside_collaborators]
        return page(fake, call, "/orgs/acme/outside_collaborators", list(users))

    @guarded("orgs/remove-outside-collaborator")
    def _(call: Call) -> Reply:
        user = call.path_params["username"]
        if user in fake.members:
            return error(422, "You cannot specify an organization member to remove.")
        if user in fake.outside_collaborators:
            fake.outside_collaborators.remove(user)
        return Reply(204)

    @guarded("repos/get-deploy-key")
    def _(call: Call) -> Reply:
        key = fake.deploy_keys.get(int(call.path_params["key_id"]))
        return error(404, "Not Found") if key is None else Reply(200, key)

    @guarded("repos/delete-deploy-key")
    def _(call: Call) -> Reply:
        if fake.deploy_keys.pop(int(call.path_params["key_id"]), None) is None:
            return error(404, "Not Found")
        return Reply(204)

    @guarded("repos/create-deploy-key")
    def _(call: Call) -> Reply:
        body = call.body
        if any(k["key"] == body["key"] for k in fake.deploy_keys.values()):
            return error(422, "Validation Failed: key is already in use")
        return Reply(201, fake.add_deploy_key(body["title"], body["key"], body["read_only"]))


def connection(fake: FakeGitHub) -> SystemConnection:
    """GitHub Enterprise Server layout (`/api/v3`), which also checks base_url handling."""
    return SystemConnection(
        url=f"{fake.server.url}/api/v3", token=SecretRef(env="GITHUB_RESPONDER_TOKEN")
    )


def new_fake() -> FakeGitHub:
    """A fake with its handlers, not yet serving (see `contract_server.serve`)."""
    server = ContractServer(
        operations(),
        base_path="/api/v3",
        header_check=check_headers,
        global_codes=GLOBAL_CODES,
        unauthenticated=frozenset({"credentials/revoke"}),
    )
    fake = FakeGitHub(server)
    install_handlers(fake)
    return fake
