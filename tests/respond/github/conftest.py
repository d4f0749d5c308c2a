"""The `github` fixture: a contract-checked GitHub fake on 127.0.0.1 for each test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.respond.contract_server import ContractServer, serve
from tests.respond.github.fake_github import (
    GLOBAL_CODES,
    TOKEN,
    FakeGitHub,
    check_headers,
    install_handlers,
    operations,
)


@pytest.fixture
async def github(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeGitHub]:
    server = ContractServer(
        operations(),
        base_path="/api/v3",
        header_check=check_headers,
        global_codes=GLOBAL_CODES,
        unauthenticated=frozenset({"credentials/revoke"}),
    )
    fake = FakeGitHub(server)
    install_handlers(fake)
    monkeypatch.setenv("GITHUB_RESPONDER_TOKEN", TOKEN)
    async with serve(server):
        yield fake
