"""A local HTTP server standing in for a system whose real service cannot run in the tests.

Every request is checked against the system's published API description by the handlers;
what does not match is recorded in `violations` and answered 400, and the test that owns the
server fails on any violation when it stops.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
from aiohttp import web


class PublishedApi:
    """A vendored API description whose schemas validate request and response bodies."""

    def __init__(self, path: Path) -> None:
        self.document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))

    def schema_problem(self, name: str, value: Any) -> str | None:
        """Why `value` does not match the named schema, or None when it does."""
        if "definitions" in self.document:  # Swagger 2.0
            pointer = "#/definitions/"
        elif "components" in self.document:  # OpenAPI 3
            pointer = "#/components/schemas/"
        else:  # a contract written from prose docs keeps its schemas under `schemas`
            pointer = "#/schemas/"
        schema = {**self.document, "$ref": pointer + name}
        error = jsonschema.exceptions.best_match(
            jsonschema.Draft4Validator(schema).iter_errors(value)
        )
        return None if error is None else f"{name}: {error.message} at {list(error.path)}"


class LocalServer:
    """Runs one aiohttp application on 127.0.0.1 and collects contract violations."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.violations: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    def violation(self, request: web.Request, problem: str) -> web.Response:
        self.violations.append(f"{request.method} {request.path_qs}: {problem}")
        return web.json_response({"violation": problem}, status=400)

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        assert not self.violations, "requests broke the published API:\n" + "\n".join(
            self.violations
        )
