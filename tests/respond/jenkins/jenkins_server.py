"""A Jenkins stand-in: jobs in folders, quiet-down mode, Basic auth and CSRF crumbs.

Requests are checked against the contract in fixtures/jenkins_remote_api.json, written from
Jenkins' remote access API documentation (Jenkins publishes no OpenAPI description).
"""

from __future__ import annotations

import base64
import hmac
import re
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from tests.respond.contract_server import LocalServer, PublishedApi

API = PublishedApi(Path(__file__).parent / "fixtures" / "jenkins_remote_api.json")
JOB = re.compile(r"^((?:/job/[^/]+)+)/(api/json|disable|enable)$")
CRUMB_FIELD = "Jenkins-Crumb"


class JenkinsServer(LocalServer):
    def __init__(self, user: str, api_token: str, *, csrf: bool = True) -> None:
        self.credentials = f"{user}:{api_token}"
        self.csrf = csrf
        self.crumb = "c0ffee5eed"
        self.jobs: dict[str, dict[str, Any]] = {}  # '/job/a/job/b' -> state
        self.quieting_down = False
        self.fail_next: list[tuple[int, dict[str, str]]] = []
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        super().__init__(app)

    def add_job(self, *path: str, disabled: bool = False) -> None:
        self.jobs["".join(f"/job/{p}" for p in path)] = {"disabled": disabled, "name": path[-1]}

    def job_disabled(self, *path: str) -> bool:
        return bool(self.jobs["".join(f"/job/{p}" for p in path)]["disabled"])

    def _json(self, schema: str, data: dict[str, Any]) -> web.Response:
        if problem := API.schema_problem(schema, data):
            raise AssertionError(f"the stand-in broke its own contract: {problem}")
        return web.Response(body=orjson.dumps(data), content_type="application/json")

    def _authenticated(self, request: web.Request) -> bool:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Basic":
            return False
        try:
            given = base64.b64decode(value, validate=True)
        except ValueError:
            return False
        return hmac.compare_digest(given, self.credentials.encode())

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        path, post = request.path, request.method == "POST"
        if request.method not in ("GET", "POST"):
            return self.violation(request, "the remote access API uses GET and POST only")
        match = JOB.match(path)
        action = match.group(2) if match else path
        known_get = path in ("/crumbIssuer/api/json", "/api/json") or action == "api/json"
        known_post = action in ("disable", "enable", "/quietDown", "/cancelQuietDown")
        if not (known_get or known_post):
            return self.violation(request, "not an operation of the contract")
        if known_post != post:
            return self.violation(request, f"{action} takes {'POST' if known_post else 'GET'}")
        if known_get and set(request.query) - {"tree", "depth"}:
            return self.violation(request, f"unknown query {sorted(request.query)}")
        if post and await request.read():
            return self.violation(request, "these action URLs take no body")
        if not self._authenticated(request):
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="Jenkins"'})
        if post and self.csrf and request.headers.get(CRUMB_FIELD) != self.crumb:
            return web.Response(status=403, text="No valid crumb was included in the request")
        if self.fail_next and path != "/crumbIssuer/api/json":
            status, headers = self.fail_next.pop(0)
            return web.Response(status=status, headers=headers, text="injected failure")
        if path == "/crumbIssuer/api/json":
            if not self.csrf:
                return web.Response(status=404)
            crumb = {"crumb": self.crumb, "crumbRequestField": CRUMB_FIELD}
            return self._json(
                "crumb", {"_class": "hudson.security.csrf.DefaultCrumbIssuer", **crumb}
            )
        if path == "/api/json":
            return self._json("instance", {"quietingDown": self.quieting_down, "mode": "NORMAL"})
        if path in ("/quietDown", "/cancelQuietDown"):
            self.quieting_down = path == "/quietDown"
            raise web.HTTPFound("/")
        assert match is not None
        job = self.jobs.get(match.group(1))
        if job is None:
            return web.Response(status=404, text="Not Found")
        if action == "api/json":
            disabled = job["disabled"]
            return self._json(
                "job",
                {
                    "name": job["name"],
                    "buildable": not disabled,
                    "color": "disabled" if disabled else "blue",
                },
            )
        job["disabled"] = action == "disable"
        raise web.HTTPFound(match.group(1) + "/")
