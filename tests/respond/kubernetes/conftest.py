"""The `cluster` fixture: a Kubernetes API stand-in on 127.0.0.1 for each test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.respond.contract_server import serve
from tests.respond.kubernetes.kubernetes_server import KubernetesServer
from tests.respond.kubernetes.seed import TOKEN


@pytest.fixture
async def cluster(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[KubernetesServer]:
    monkeypatch.setenv("K8S_RESPONDER_TOKEN", TOKEN)
    server = KubernetesServer(TOKEN)
    async with serve(server):
        yield server
