"""Every command starts by importing the command line: the client libraries of the
response actions, the search engines, the HTTP sinks and Kafka load only when a command
uses them, so a replay or a rules check does not wait half a second for them."""

from __future__ import annotations

import subprocess
import sys

import orjson

#: what the command line must not import by itself
CLIENT_LIBRARIES = (
    "aiohttp",
    "aiokafka",
    "elastic_transport",
    "elasticsearch",
    "faust",
    "githubkit",
    "gitlab",
    "hvac",
    "kubernetes_asyncio",
    "opensearchpy",
)


def test_the_command_line_imports_no_client_library() -> None:
    script = (
        "import sys, json, detector.cli; "
        f"print(json.dumps([m for m in {CLIENT_LIBRARIES!r} if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, check=True, timeout=60
    )
    assert orjson.loads(result.stdout) == []
