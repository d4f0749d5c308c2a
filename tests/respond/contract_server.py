"""Local servers standing in for the systems whose real service cannot run in the tests.

Each stand-in runs on 127.0.0.1 and checks every request against the system's published API
description; what does not match is recorded in `violations` and answered 400, and the test
that owns the server fails on any violation when it stops. Two ways to build one:

- `ContractServer` serves a list of described operations (method, path, typed parameters,
  body schema, documented answer codes: the GitHub and GitLab contracts) and dispatches each
  checked request to the test fake's handler for its operation id.
- A `LocalServer` subclass with its own aiohttp routes (Kubernetes, Vault, Jenkins) checks
  bodies against the named schemas of a vendored OpenAPI/Swagger document (`PublishedApi`).

Schema checks report every error of a body, not just the first.
"""

from __future__ import annotations

import re
import ssl
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

import aiohttp
import orjson
import trustme
from aiohttp import web
from jsonschema import Draft4Validator, Draft202012Validator
from jsonschema.protocols import Validator


def schema_problems(validator: Validator, value: Any) -> list[str]:
    """Every way `value` breaks the validator's schema, each with where in the value."""
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '$'}: {error.message}"
        for error in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    ]


class PublishedApi:
    """A vendored API description whose named schemas validate request and response bodies."""

    def __init__(self, path: Path) -> None:
        self.document: dict[str, Any] = orjson.loads(path.read_bytes())

    def schema_problem(self, name: str, value: Any) -> str | None:
        """Why `value` does not match the named schema, or None when it does."""
        if "definitions" in self.document:  # Swagger 2.0
            pointer = "#/definitions/"
        elif "components" in self.document:  # OpenAPI 3
            pointer = "#/components/schemas/"
        else:  # a contract written from prose docs keeps its schemas under `schemas`
            pointer = "#/schemas/"
        # Swagger 2.0 and OpenAPI 3.0 schemas are JSON Schema draft 4 (with extensions).
        problems = schema_problems(
            Draft4Validator({**self.document, "$ref": pointer + name}), value
        )
        return f"{name}: " + "; ".join(problems) if problems else None


def json_response(data: Any, status: int = 200) -> web.Response:
    """A JSON answer with `Content-Type: application/json` and no charset, as the APIs send."""
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


class LocalServer:
    """Runs one aiohttp application on 127.0.0.1 and collects contract violations."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.violations: list[str] = []
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self._runner: web.AppRunner | None = None
        self.url = ""

    def violation(self, request: web.Request, problem: str) -> web.Response:
        self.violations.append(f"{request.method} {request.path_qs}: {problem}")
        return json_response({"message": f"contract violation: {problem}"}, status=400)

    async def start(self, tls: ssl.SSLContext | None = None) -> None:
        """Listen on a free port of 127.0.0.1, over HTTPS when given a server TLS context."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=tls)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Stop listening; fail if any request broke the description."""
        if self._runner is not None:
            await self._runner.cleanup()
        assert not self.violations, "requests broke the published API:\n" + "\n".join(
            self.violations
        )


ServerT = TypeVar("ServerT", bound=LocalServer)


@asynccontextmanager
async def serve(server: ServerT, tls: ssl.SSLContext | None = None) -> AsyncIterator[ServerT]:
    """Run `server` (HTTPS with `tls`) for the block; fail if any request broke the description."""
    await server.start(tls)
    try:
        yield server
    finally:
        await server.stop()


def private_ca(directory: Path) -> tuple[ssl.SSLContext, str]:
    """A server TLS context for 127.0.0.1 signed by a fresh CA, and that CA's PEM file."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return context, str(ca_file)


async def assert_refused(
    server: LocalServer,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    body: object,
    complaint: str,
) -> None:
    """Send a request off the description: it must be answered 400 and recorded as one
    violation naming `complaint` (which is then cleared, so the server stops cleanly)."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, headers=dict(headers), json=body) as response,
    ):
        assert response.status == 400
    assert len(server.violations) == 1, server.violations
    assert complaint.lower() in server.violations[0].lower()
    server.violations.clear()


# --- operation contracts (GitHub, GitLab) ---------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One described operation: what a request may carry and which codes it may answer."""

    operation_id: str
    method: str
    path: str
    parameters: tuple[dict[str, Any], ...]
    body_schema: dict[str, Any] | None
    body_required: bool
    responses: frozenset[int]

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(
            "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path)) + "$"
        )


def load_operations(contract: Path) -> list[Operation]:
    """The operations of a vendored contract file (`operations`: a list in one shape)."""
    return [
        Operation(
            operation_id=op["operationId"],
            method=op["method"],
            path=op["path"],
            parameters=tuple(op["parameters"]),
            body_schema=op["requestBody"]["schema"] if op["requestBody"] else None,
            body_required=bool(op["requestBody"] and op["requestBody"]["required"]),
            responses=frozenset(int(code) for code in op["responses"]),
        )
        for op in orjson.loads(contract.read_bytes())["operations"]
    ]


@dataclass
class Call:
    """A request the server accepted, as the fake sees it."""

    operation_id: str
    path_params: dict[str, str]
    query: dict[str, str]
    headers: Mapping[str, str]
    body: Any


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Call], Reply]
#: answers a call the fake refuses before its handler sees it (a wrong token), else None
Guard = Callable[[Call], Reply | None]
HeaderCheck = Callable[[str, Mapping[str, str], bool], list[str]]


def _type_ok(value: str, schema: Mapping[str, Any]) -> bool:
    kind = schema.get("type")
    if kind == "integer":
        return re.fullmatch(r"-?\d+", value) is not None
    if kind == "boolean":
        return value in ("true", "false")
    if "enum" in schema:
        return value in schema["enum"]
    return True


class ContractServer(LocalServer):
    """Serves `operations` with the fake's `handlers`; every answer code must be documented
    (by the operation, or in `global_codes` for what the vendor's general pages document)."""

    def __init__(
        self,
        operations: list[Operation],
        *,
        base_path: str,
        header_check: HeaderCheck,
        global_codes: frozenset[int],
        unauthenticated: frozenset[str] = frozenset(),
    ) -> None:
        self.operations = operations
        self.base_path = base_path.rstrip("/")
        self.header_check = header_check
        self.global_codes = global_codes
        self.unauthenticated = unauthenticated
        self.handlers: dict[str, tuple[Guard | None, Handler]] = {}
        self.faults: dict[str, deque[Reply]] = defaultdict(deque)
        self.calls: list[Call] = []
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        super().__init__(app)

    def handle(self, operation_id: str, guard: Guard | None = None) -> Callable[[Handler], Handler]:
        """Decorator: the fake's handler of `operation_id`, behind `guard` when given."""
        if operation_id not in {op.operation_id for op in self.operations}:
            raise KeyError(f"{operation_id} is not in the description")

        def register(handler: Handler) -> Handler:
            self.handlers[operation_id] = (guard, handler)
            return handler

        return register

    def fail_next(self, operation_id: str, reply: Reply) -> None:
        """Answer the next call of `operation_id` with `reply` (rate limits, outages)."""
        self.faults[operation_id].append(reply)

    def calls_of(self, operation_id: str) -> list[Call]:
        return [call for call in self.calls if call.operation_id == operation_id]

    def _match(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        for op in self.operations:
            if op.method == method and (found := op.pattern.match(path)):
                return op, {name: unquote(value) for name, value in found.groupdict().items()}
        return None

    def _check_parameters(
        self, op: Operation, path_params: Mapping[str, str], query: Mapping[str, str]
    ) -> list[str]:
        problems = []
        described = {(p["in"], p["name"]): p for p in op.parameters}
        for name, value in path_params.items():
            param = described.get(("path", name))
            if param is None or not _type_ok(value, param["schema"]):
                problems.append(f"path parameter {name}={value!r}")
        for name, value in query.items():
            param = described.get(("query", name))
            if param is None:
                problems.append(f"undescribed query parameter {name}")
            elif not _type_ok(value, param["schema"]):
                problems.append(f"query parameter {name}={value!r}")
        for (where, name), param in described.items():
            if where == "query" and param.get("required") and name not in query:
                problems.append(f"missing required query parameter {name}")
        return problems

    def _check_body(self, op: Operation, request: web.Request, raw: bytes) -> tuple[Any, list[str]]:
        """The JSON body and what is wrong with it."""
        if op.body_schema is None:
            # An empty JSON object carries no parameter; clients send it on bare POSTs.
            if raw and raw.strip() != b"{}":
                return None, ["a body where the operation takes none"]
            return None, []
        if not raw:
            return None, ["missing required body"] if op.body_required else []
        problems = []
        if request.content_type != "application/json":
            problems.append(f"body content type {request.content_type}")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None, [*problems, "body is not JSON"]
        validator = Draft202012Validator(op.body_schema)
        return body, problems + [f"body {p}" for p in schema_problems(validator, body)]

    async def _dispatch(self, request: web.Request) -> web.Response:
        path = request.raw_path.split("?", 1)[0]  # raw: ids like group%2Fapp stay one segment
        self.requests.append((request.method, path))
        if not path.startswith(self.base_path + "/"):
            return self.violation(request, f"outside {self.base_path}")
        matched = self._match(request.method, path[len(self.base_path) :])
        if matched is None:
            return self.violation(request, "not a described operation")
        op, path_params = matched
        query = dict(request.query)
        problems = self._check_parameters(op, path_params, query)
        problems += self.header_check(
            op.operation_id, request.headers, op.operation_id in self.unauthenticated
        )
        body, body_problems = self._check_body(op, request, await request.read())
        if problems or body_problems:
            return self.violation(
                request, f"{op.operation_id}: " + "; ".join(problems + body_problems)
            )
        call = Call(op.operation_id, path_params, query, request.headers, body)
        self.calls.append(call)
        if self.faults[op.operation_id]:
            reply = self.faults[op.operation_id].popleft()
        elif op.operation_id in self.handlers:
            guard, handler = self.handlers[op.operation_id]
            reply = (guard(call) if guard else None) or handler(call)
        else:
            return self.violation(request, f"{op.operation_id} has no handler in this test")
        if reply.status not in op.responses and reply.status not in self.global_codes:
            self.violations.append(
                f"{op.operation_id}: the fake answered undocumented {reply.status}"
            )
        if reply.body is None:
            return web.Response(status=reply.status, headers=reply.headers)
        response = json_response(reply.body, reply.status)
        response.headers.update(reply.headers)
        return response
