"""Regenerate `openapi_subset.json` from GitHub's published OpenAPI description.

Not run by the tests. The description ships in the npm package `@octokit/openapi` (MIT),
a copy of github/rest-api-description with Octokit extensions:

    npm pack @octokit/openapi@23.0.2 && tar xzf octokit-openapi-23.0.2.tgz
    python tests/respond/github/extract_openapi.py package/generated/api.github.com.deref.json

Only the operations the GitHub actions call are kept: method, path, parameters, the
request body schema and the documented response codes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OPERATIONS = (
    "orgs/update-pat-access",
    "orgs/list-pat-grants",
    "credentials/revoke",
    "actions/disable-workflow",
    "actions/enable-workflow",
    "actions/get-workflow",
    "actions/cancel-workflow-run",
    "actions/force-cancel-workflow-run",
    "actions/get-workflow-run",
    "actions/get-self-hosted-runner-for-repo",
    "actions/delete-self-hosted-runner-from-repo",
    "actions/get-self-hosted-runner-for-org",
    "actions/delete-self-hosted-runner-from-org",
    "orgs/check-blocked-user",
    "orgs/block-user",
    "orgs/unblock-user",
    "orgs/list-outside-collaborators",
    "orgs/remove-outside-collaborator",
    "repos/get-deploy-key",
    "repos/delete-deploy-key",
    "repos/create-deploy-key",
    "users/get-authenticated",
)


def _without_docs(schema: object) -> object:
    """Drop prose (descriptions, examples) so the fixture keeps only what is checked."""
    if isinstance(schema, dict):
        return {
            key: _without_docs(value)
            for key, value in schema.items()
            if key not in ("description", "examples", "example")
        }
    if isinstance(schema, list):
        return [_without_docs(item) for item in schema]
    return schema


def extract(description: dict[str, object]) -> dict[str, object]:
    paths = description["paths"]
    assert isinstance(paths, dict)
    found: dict[str, dict[str, object]] = {}
    for path, item in paths.items():
        for method, operation in item.items():
            if isinstance(operation, dict) and operation.get("operationId") in OPERATIONS:
                body = operation.get("requestBody")
                found[operation["operationId"]] = {
                    "operationId": operation["operationId"],
                    "method": method.upper(),
                    "path": path,
                    "parameters": [
                        {
                            "name": p["name"],
                            "in": p["in"],
                            "required": p.get("required", False),
                            "schema": _without_docs(p["schema"]),
                        }
                        for p in operation.get("parameters", [])
                    ],
                    "requestBody": None
                    if body is None
                    else {
                        "required": body.get("required", False),
                        "contentType": "application/json",
                        "schema": _without_docs(body["content"]["application/json"]["schema"]),
                    },
                    "responses": sorted(operation["responses"]),
                }
    missing = set(OPERATIONS) - set(found)
    if missing:
        raise SystemExit(f"not in the description: {sorted(missing)}")
    info = description["info"]
    assert isinstance(info, dict)
    return {
        "source": {
            "package": "@octokit/openapi",
            "version": info["version"],
            "file": "generated/api.github.com.deref.json",
            "licence": "MIT",
            "upstream": "https://github.com/github/rest-api-description",
        },
        "api_version": "2022-11-28",
        "operations": [found[name] for name in OPERATIONS],
    }


if __name__ == "__main__":
    source = Path(sys.argv[1])
    subset = extract(json.loads(source.read_text(encoding="utf-8")))
    target = Path(__file__).with_name("openapi_subset.json")
    target.write_text(json.dumps(subset, indent=1, sort_keys=True) + "\n", encoding="utf-8")
