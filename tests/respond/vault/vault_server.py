"""A Vault stand-in: token accessors and leases, checked against Vault's OpenAPI subset."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from tests.respond.contract_server import LocalServer, PublishedApi, json_response

API = PublishedApi(Path(__file__).parent / "fixtures" / "vault_openapi_subset.json")
Handler = Callable[[web.Request, dict[str, Any]], Awaitable[web.Response]]


def _errors(status: int, *errors: str) -> web.Response:
    return json_response({"errors": list(errors)}, status)


class VaultServer(LocalServer):
    def __init__(self, token: str, *, idempotent_revoke_accessor: bool = True) -> None:
        self.token = token
        self.idempotent_revoke_accessor = idempotent_revoke_accessor
        # accessor -> parent accessor (None for a root of a tree)
        self.tokens: dict[str, str | None] = {}
        self.leases: dict[str, dict[str, Any]] = {}
        self.fail_next: list[tuple[int, dict[str, str]]] = []
        self.revoked_elsewhere_after_lookup = False
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        app = web.Application()
        for path, handler in {
            "/auth/token/lookup-accessor": self._lookup_accessor,
            "/auth/token/revoke-accessor": self._revoke_accessor,
            "/sys/leases/lookup": self._lookup_lease,
            "/sys/leases/revoke": self._revoke_lease,
        }.items():
            app.router.add_route("*", f"/v1{path}", self._checked(path, handler))
        super().__init__(app)

    def _checked(
        self, path: str, handler: Handler
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        operation = API.document["paths"][path]["post"]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        schema_name = schema["$ref"].rsplit("/", 1)[-1]

        async def check(request: web.Request) -> web.Response:
            self.requests.append((request.method, request.path))
            # Vault maps both PUT and POST to the 'update' operation the description lists.
            if request.method not in ("POST", "PUT"):
                return self.violation(request, f"{request.method} is not an operation of {path}")
            if request.query:
                return self.violation(request, f"query {sorted(request.query)} not described")
            if request.content_type != "application/json":
                return self.violation(request, f"body is {request.content_type}, not JSON")
            try:
                body = orjson.loads(await request.read())
            except orjson.JSONDecodeError:
                return self.violation(request, "body is not JSON")
            if problem := API.schema_problem(schema_name, body):
                return self.violation(request, problem)
            self.bodies.append((path, body))
            given = request.headers.get("X-Vault-Token", "")
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return _errors(403, "permission denied")
            if self.fail_next:
                status, headers = self.fail_next.pop(0)
                response = _errors(status, "injected failure")
                response.headers.update(headers)
                return response
            return await handler(request, body)

        return check

    def add_token(self, accessor: str, parent: str | None = None) -> None:
        self.tokens[accessor] = parent

    def _tree(self, accessor: str) -> set[str]:
        children = {a for a, p in self.tokens.items() if p == accessor}
        return {accessor}.union(*(self._tree(c) for c in children))

    async def _lookup_accessor(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        accessor = body.get("accessor", "")
        if accessor not in self.tokens:
            return _errors(400, "invalid accessor")
        data = {"accessor": accessor, "id": "", "policies": ["default"], "ttl": 3600}
        if self.revoked_elsewhere_after_lookup:
            del self.tokens[accessor]
        return json_response({"data": data})

    async def _revoke_accessor(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        accessor = body.get("accessor", "")
        if not accessor:
            return _errors(400, "missing accessor")
        if accessor not in self.tokens:
            if self.idempotent_revoke_accessor:
                return web.Response(status=204)
            return _errors(400, "1 error occurred:\n\t* invalid accessor\n\n")
        for revoked in self._tree(accessor):
            del self.tokens[revoked]
        return web.Response(status=204)

    async def _lookup_lease(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        lease = self.leases.get(body.get("lease_id", ""))
        if lease is None:
            return _errors(400, "invalid lease")
        if problem := API.schema_problem("LeasesReadLeaseResponse", lease):
            raise AssertionError(problem)
        return json_response({"data": lease})

    async def _revoke_lease(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        if not body.get("lease_id"):
            return _errors(400, "lease_id is required")
        self.leases.pop(body["lease_id"], None)  # an unknown lease is not an error
        return web.Response(status=204)
