"""The `gitlab` fixture: a contract-checked GitLab fake on 127.0.0.1 for each test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.respond.contract_server import serve
from tests.respond.gitlab.fake_gitlab import TOKEN, FakeGitLab, new_fake


@pytest.fixture
async def gitlab(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeGitLab]:
    monkeypatch.setenv("GITLAB_RESPONDER_TOKEN", TOKEN)
    fake = new_fake()
    async with serve(fake.server):
        yield fake
