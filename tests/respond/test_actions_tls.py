"""GitHub and GitLab actions over HTTPS: a private CA named in `verify_tls` is trusted, and a
certificate the client cannot verify is a final error, not one to retry."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from detector.respond.actions import github, gitlab
from detector.respond.actions.base import ActionError, SystemConnection
from detector.secrets import SecretRef
from tests.respond.contract_server import private_ca, serve
from tests.respond.github import fake_github
from tests.respond.gitlab import fake_gitlab


@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, str]:
    return private_ca(tmp_path)


async def test_github_over_https(
    tls: tuple[ssl.SSLContext, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    context, ca_file = tls
    monkeypatch.setenv("GH", fake_github.TOKEN)
    fake = fake_github.new_fake()
    params = github.OrgUserParams(org="acme", username="mallory")
    async with serve(fake.server, context):
        url, token = f"{fake.server.url}/api/v3", SecretRef(env="GH")
        trusted = SystemConnection(url=url, token=token, verify_tls=ca_file)
        assert (await github.BlockUser(trusted).execute(params)).state == "done"
        assert "mallory" in fake.blocks

        with pytest.raises(ActionError) as raised:
            await github.BlockUser(SystemConnection(url=url, token=token)).verify(params)
    assert not raised.value.retryable and "TLS" in str(raised.value)


async def test_gitlab_over_https(
    tls: tuple[ssl.SSLContext, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    context, ca_file = tls
    monkeypatch.setenv("GL", fake_gitlab.TOKEN)
    fake = fake_gitlab.new_fake()
    params = gitlab.RunnerParams(runner_id=30)
    async with serve(fake.server, context):
        url, token = fake.server.url, SecretRef(env="GL")
        trusted = SystemConnection(url=url, token=token, verify_tls=ca_file)
        assert (await gitlab.PauseRunner(trusted).execute(params)).state == "done"
        assert fake.runners[30] is True

        with pytest.raises(ActionError) as raised:
            await gitlab.PauseRunner(SystemConnection(url=url, token=token)).verify(params)
    assert not raised.value.retryable and "TLS" in str(raised.value)
