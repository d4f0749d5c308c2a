"""The `gitlab` fixture: a contract-checked GitLab fake on 127.0.0.1 for each test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.respond.contract_server import ContractServer, serve
from tests.respond.gitlab.fake_gitlab import (
    GLOBAL_CODES,
    TOKEN,
    FakeGitLab,
    check_headers,
    install_handlers,
    operations,
)


@pytest.fixture
async def gitlab(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeGitLab]:
    server = ContractServer(
        operations(), base_path="/api/v4", header_check=check_headers, global_codes=GLOBAL_CODES
    )
    fake = FakeGitLab(server)
    install_handlers(fake)
    monkeypatch.setenv("GITLAB_RESPONDER_TOKEN", TOKEN)
    async with serve(server):
        yield fake
