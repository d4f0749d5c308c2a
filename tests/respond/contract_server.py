"""A local HTTP server that serves an API's paths and checks every request against its description.

The real services cannot run here, so each action test talks to this server on 127.0.0.1.
Every request must match a described operation (method and path), carry only described
parameters of the described types, pass the system's header check and a body valid against
the operation's JSON Schema; every answer the test's fake gives must be a documented response
code. Anything else is recorded as a violation and the test fails when the server stops.
"""

from __future__ import annotations

import re
import ssl
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web
from jsonschema import Draft202012Validator


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


class ContractServer:
    """Serves `operations` with the fake's `handlers`; collects every contract violation."""

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
        self.handlers: dict[str, Handler] = {}
        self.faults: dict[str, deque[Reply]] = defaultdict(deque)
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self.url = ""

    def handle(self, operation_id: str) -> Callable[[Handler], Handler]:
        if operation_id not in {op.operation_id for op in self.operations}:
            raise KeyError(f"{operation_id} is not in the description")

        def register(handler: Handler) -> Handler:
            self.handlers[operation_id] = handler
            return handler

        return register

    def fail_next(self, operation_id: str, reply: Reply) -> None:
        """Answer the next call of `operation_id` with `reply` (rate limits, outages)."""
        self.faults[operation_id].append(reply)

    def calls_of(self, operation_id: str) -> list[Call]:
        return [call for call in self.calls if call.operation_id == operation_id]

    def _violation(self, message: str) -> web.Response:
        self.violations.append(message)
        return web.json_response({"message": f"contract violation: {message}"}, status=400)

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

    async def _dispatch(self, request: web.Request) -> web.Response:
        path = request.raw_path.split("?", 1)[0]  # raw: ids like group%2Fapp stay one segment
        if not path.startswith(self.base_path + "/"):
            return self._violation(f"{request.method} {path} is outside {self.base_path}")
        matched = self._match(request.method, path[len(self.base_path) :])
        if matched is None:
            return self._violation(f"{request.method} {path} is not a described operation")
        op, path_params = matched
        query = dict(request.query)
        problems = self._check_parameters(op, path_params, query)
        raw = await request.read()
        has_body = bool(raw)
        problems += self.header_check(
            op.operation_id, request.headers, op.operation_id in self.unauthenticated
        )
        body: Any = None
        if op.body_schema is None:
            # An empty JSON object carries no parameter; clients send it on bare POSTs.
            if has_body and raw.strip() != b"{}":
                problems.append("a body where the operation takes none")
        elif not has_body:
            if op.body_required:
                problems.append("missing required body")
        else:
            if request.content_type != "application/json":
                problems.append(f"body content type {request.content_type}")
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                problems.append("body is not JSON")
            else:
                problems += [
                    f"body {'/'.join(map(str, e.absolute_path))}: {e.message}"
                    for e in Draft202012Validator(op.body_schema).iter_errors(body)
                ]
        if problems:
            return self._violation(f"{op.operation_id}: " + "; ".join(problems))
        call = Call(op.operation_id, path_params, query, request.headers, body)
        self.calls.append(call)
        if self.faults[op.operation_id]:
            reply = self.faults[op.operation_id].popleft()
        elif op.operation_id in self.handlers:
            reply = self.handlers[op.operation_id](call)
        else:
            return self._violation(f"{op.operation_id} has no handler in this test")
        if reply.status not in op.responses and reply.status not in self.global_codes:
            self.violations.append(
                f"{op.operation_id}: the fake answered undocumented {reply.status}"
            )
        if reply.body is None:
            return web.Response(status=reply.status, headers=reply.headers)
        return web.Response(
            status=reply.status,
            body=orjson.dumps(reply.body),
            content_type="application/json",
            headers=reply.headers,
        )


@asynccontextmanager
async def serve(
    server: ContractServer, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[ContractServer]:
    """Run `server` on a free 127.0.0.1 port (HTTPS with `ssl_context`); fail if any request
    broke the description."""
    app = web.Application()

    async def route(request: web.Request) -> web.Response:
        return await server._dispatch(request)

    app.router.add_route("*", "/{tail:.*}", route)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()
    assert not server.violations, "requests broke the API description:\n" + "\n".join(
        server.violations
    )
