"""A Kubernetes API server stand-in, serving exactly the operations of the vendored OpenAPI subset.

Each request is checked against the operation it names: method, path, query parameters,
Bearer authorization, the patch content types the operation consumes, and bodies against the
schemas (a POST body directly; a PATCH by the object it produces). Objects live in memory with
resourceVersions, so conflicts, deletes and restores behave as on a cluster. Custom resources
(Flux, Argo CD) are checked against their CRD schemas in gitops_crd_subset.json.
"""

from __future__ import annotations

import hmac
import itertools
import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from tests.respond.contract_server import LocalServer, PublishedApi, json_response

FIXTURES = Path(__file__).parent / "fixtures"
OPENAPI = PublishedApi(FIXTURES / "kubernetes_openapi_subset.json")
CRDS = PublishedApi(FIXTURES / "gitops_crd_subset.json")
CUSTOM_OBJECT = "/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}"
MERGE_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _has_list(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_list(v) for v in value.values())
    return isinstance(value, list)


def status(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
    body |= {"message": message, "reason": reason, "code": code}
    return json_response(body, code)


def _ref_name(schema: dict[str, Any]) -> str:
    return str(schema["$ref"]).rsplit("/", 1)[-1]


class KubernetesServer(LocalServer):
    def __init__(self, token: str) -> None:
        self.token = token
        self.objects: dict[str, dict[str, Any]] = {}  # item path -> object
        self.fail_next: list[tuple[int, dict[str, str]]] = []  # for the next requests
        self.fail_on: dict[tuple[str, str], int] = {}  # (method, path) -> status, once
        self._versions = itertools.count(1000)
        app = web.Application()
        for path, item in OPENAPI.document["paths"].items():
            shared = item.get("parameters", [])
            for method, operation in item.items():
                if method != "parameters":
                    handler = self._operation(path, operation, shared)
                    app.router.add_route(method.upper(), path, handler)
        app.router.add_route("GET", CUSTOM_OBJECT, self._custom_object)
        app.router.add_route("PATCH", CUSTOM_OBJECT, self._custom_object)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        super().__init__(app)

    # --- seeding and reading state from tests ----------------------------------------

    def put(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object at its item path, with the metadata the server owns."""
        metadata = obj.setdefault("metadata", {})
        metadata.setdefault("uid", str(uuid.uuid4()))
        metadata.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        metadata["resourceVersion"] = str(next(self._versions))
        self.objects[path] = obj
        return obj

    def get(self, path: str) -> dict[str, Any] | None:
        return self.objects.get(path)

    def _injected_failure(self, request: web.Request) -> web.Response | None:
        """The failure a test queued for this request in `fail_on`, else the next one queued
        in `fail_next` (rate limits, outages, conflicts), if any."""
        if (code := self.fail_on.pop((request.method, request.path), None)) is not None:
            headers: dict[str, str] = {}
        elif self.fail_next:
            code, headers = self.fail_next.pop(0)
        else:
            return None
        response = status(code, "Injected", "injected failure")
        response.headers.update(headers)
        return response

    # --- the contract --------------------------------------------------------------

    async def _unknown(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path))
        return self.violation(request, "no such operation in the Kubernetes OpenAPI subset")

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme == "Bearer" and hmac.compare_digest(given.encode(), self.token.encode())

    def _operation(
        self, path: str, operation: dict[str, Any], shared: list[dict[str, Any]]
    ) -> Handler:
        parameters = shared + operation.get("parameters", [])
        allowed_query = {p["name"] for p in parameters if p["in"] == "query"}
        body_schema = next((p["schema"] for p in parameters if p["in"] == "body"), None)
        answer_schema = operation["responses"]["200"].get("schema")
        action = operation["x-kubernetes-action"]

        async def handle(request: web.Request) -> web.StreamResponse:
            self.requests.append((request.method, request.path))
            if unknown := set(request.query) - allowed_query:
                return self.violation(request, f"query parameters {sorted(unknown)} not described")
            body: Any = None
            raw = await request.read()
            if action == "patch":
                if request.content_type not in operation["consumes"]:
                    return self.violation(request, f"{request.content_type} is not consumed")
                if request.content_type not in MERGE_TYPES:
                    return self.violation(request, "the stand-in emulates merge patches only")
            elif action == "post":
                if request.content_type != "application/json":
                    return self.violation(
                        request, f"a create sends JSON, not {request.content_type}"
                    )
            elif raw:
                return self.violation(request, f"a {action} takes no body here")
            if raw:
                try:
                    body = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    return self.violation(request, "body is not JSON")
            body_problem = body_schema and OPENAPI.schema_problem(_ref_name(body_schema), body)
            if action == "post" and body_problem:
                return self.violation(request, body_problem)
            if not self._authorized(request):
                return status(401, "Unauthorized", "Unauthorized")
            if injected := self._injected_failure(request):
                return injected
            answer = _ref_name(answer_schema) if answer_schema else ""
            response = await self._act(request, action, body, answer)
            if response.status == 200 and answer and response.body:
                sent = orjson.loads(response.body)  # type: ignore[arg-type]
                if problem := OPENAPI.schema_problem(answer, sent):
                    raise AssertionError(f"the stand-in broke its own contract: {problem}")
            return response

        return handle

    async def _act(self, request: web.Request, action: str, body: Any, answer: str) -> web.Response:
        """Carry out a described operation; `answer` names the schema of its 200 answer."""
        path = request.path
        if path.endswith("/scale"):
            return self._scale(request, body)
        if action == "list":
            return self._list(request, answer.rsplit(".", 1)[-1])
        if action == "post":
            return self._create(request, body)
        current = self.objects.get(path)
        if current is None:
            return status(404, "NotFound", f"{path.rsplit('/', 1)[-1]} not found")
        if action == "get":
            return json_response(current)
        if action == "delete":
            del self.objects[path]
            return json_response({"kind": "Status", "apiVersion": "v1", "status": "Success"})
        return self._patch(request, path, current, body, OPENAPI, answer)

    def _patch(
        self,
        request: web.Request,
        path: str,
        current: dict[str, Any],
        patch: Any,
        api: PublishedApi,
        definition: str,
    ) -> web.Response:
        if request.content_type.startswith("application/strategic") and _has_list(patch):
            return self.violation(request, "the stand-in cannot emulate strategic list merges")
        expected = (patch.get("metadata") or {}).get("resourceVersion")
        if expected is not None and expected != current["metadata"]["resourceVersion"]:
            return status(409, "Conflict", "the object has been modified")
        updated = merge_patch(current, patch)
        if "roleRef" in current and updated.get("roleRef") != current["roleRef"]:
            return status(422, "Invalid", "roleRef: Invalid value: cannot change roleRef")
        if problem := api.schema_problem(definition, updated):
            self.violation(request, f"the patch produces an invalid object: {problem}")
            return status(422, "Invalid", problem)
        return json_response(self.put(path, updated))

    def _create(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        metadata = body.get("metadata", {})
        if server_owned := {"resourceVersion", "uid"} & set(metadata):
            self.violation(request, f"a create carries server-owned {sorted(server_owned)}")
            return status(
                400, "BadRequest", "resourceVersion should not be set on objects to be created"
            )
        namespace = request.match_info.get("namespace")
        if namespace is not None and metadata.get("namespace", namespace) != namespace:
            return status(
                400, "BadRequest", "the namespace of the object does not match the request"
            )
        path = f"{request.path}/{metadata['name']}"
        if path in self.objects:
            return status(409, "AlreadyExists", f"{metadata['name']} already exists")
        stored = self.put(path, orjson.loads(orjson.dumps(body)))
        return json_response(stored, 201)

    def _list(self, request: web.Request, list_kind: str) -> web.Response:
        base, plural = request.path.rsplit("/", 1)
        across = re.compile(
            re.escape(base) + r"/namespaces/[^/]+/" + re.escape(plural) + r"/[^/]+$"
        )
        # Items of a list carry no apiVersion and kind, as from a real API server.
        items = [
            {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
            for key, obj in sorted(self.objects.items())
            if key.rsplit("/", 1)[0] == request.path or across.match(key)
        ]
        for selector, read in (("fieldSelector", _field), ("labelSelector", _label)):
            for term in filter(None, request.query.get(selector, "").split(",")):
                key, sep, value = term.partition("=")
                if not sep or key.endswith("!"):
                    return self.violation(
                        request, f"the stand-in supports k=v selectors, not {term}"
                    )
                items = [o for o in items if read(o, key) == value]
        return json_response(
            {"kind": list_kind, "metadata": {"resourceVersion": "1"}, "items": items}
        )

    def _scale(self, request: web.Request, patch: Any) -> web.Response:
        workload_path = request.path.removesuffix("/scale")
        workload = self.objects.get(workload_path)
        if workload is None:
            return status(404, "NotFound", "not found")
        if patch is not None:
            expected = merge_patch({"spec": {"replicas": workload["spec"]["replicas"]}}, patch)
            replicas = expected.get("spec", {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                return status(422, "Invalid", "spec.replicas: must be a non-negative integer")
            workload["spec"]["replicas"] = replicas
            workload["status"] = {"replicas": replicas}
            self.put(workload_path, workload)
        metadata = {
            k: workload["metadata"][k] for k in ("name", "namespace", "resourceVersion", "uid")
        }
        scale = {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": metadata,
            "spec": {"replicas": workload["spec"]["replicas"]},
            "status": {"replicas": workload.get("status", {}).get("replicas", 0)},
        }
        return json_response(scale)

    async def _custom_object(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        info = request.match_info
        kind = CRDS.document["resources"].get(f"{info['group']}/{info['version']}/{info['plural']}")
        if kind is None:
            return self.violation(request, "no such operation in the OpenAPI subset or the CRDs")
        if set(request.query) - {"dryRun", "fieldManager", "force", "pretty"}:
            return self.violation(request, f"query {sorted(request.query)} not described")
        patch: Any = None
        if request.method == "PATCH":
            if request.content_type not in CRDS.document["patch_content_types"]:
                self.violation(request, f"custom resources do not take {request.content_type}")
                return status(
                    415, "UnsupportedMediaType", "the body of the request was in an unknown format"
                )
            if request.content_type != "application/merge-patch+json":
                return self.violation(request, "the stand-in emulates merge patches only")
            patch = orjson.loads(await request.read())
        if not self._authorized(request):
            return status(401, "Unauthorized", "Unauthorized")
        if injected := self._injected_failure(request):
            return injected
        current = self.objects.get(request.path)
        if current is None:
            return status(404, "NotFound", f"{info['plural']} {info['name']} not found")
        if patch is None:
            return json_response(current)
        return self._patch(request, request.path, current, patch, CRDS, kind)


def _field(obj: dict[str, Any], key: str) -> Any:
    value: Any = obj
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _label(obj: dict[str, Any], key: str) -> Any:
    return obj.get("metadata", {}).get("labels", {}).get(key)
