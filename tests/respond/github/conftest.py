"""The `github` fixture: a contract-checked GitHub fake on 127.0.0.1 for each test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.respond.contract_server import serve
from tests.respond.github.fake_github import TOKEN, FakeGitHub, new_fake


@pytest.fixture
async def github(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeGitHub]:
    monkeypatch.setenv("GITHUB_RESPONDER_TOKEN", TOKEN)
    fake = new_fake()
    async with serve(fake.server):
        yield fake
