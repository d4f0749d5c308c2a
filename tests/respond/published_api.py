"""A local HTTP server standing in for a system whose real service cannot run in the tests.

Every request is checked against the system's published API description by the handlers;
what does not match is recorded in `violations` and answered 400, and the test that owns the
server fails on any violation when it stops.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import jsonschema
import trustme
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

    async def start(self, tls: ssl.SSLContext | None = None) -> None:
        """Listen on a free port of 127.0.0.1, over HTTPS when given a server TLS context."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=tls)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        assert not self.violations, "requests broke the published API:\n" + "\n".join(
            self.violations
        )


def private_ca(directory: Path) -> tuple[ssl.SSLContext, str]:
    """A server TLS context for 127.0.0.1 signed by a fresh CA, and that CA's PEM file."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return context, str(ca_file)
