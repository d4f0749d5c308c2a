"""Vault actions against a local Vault stand-in that checks requests against Vault's OpenAPI."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from detector.respond.actions.base import ActionError, NotReversible, SystemConnection
from detector.respond.actions.vault import (
    RevokeAccessorParams,
    RevokeLease,
    RevokeLeaseParams,
    RevokeTokenAccessor,
)
from detector.secrets import SecretRef
from tests.respond.contract_server import serve
from tests.respond.vault.vault_server import VaultServer

TOKEN = "hvs.responder-token-value"


@pytest.fixture
async def vault(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[VaultServer]:
    monkeypatch.setenv("VAULT_RESPONDER_TOKEN", TOKEN)
    server = VaultServer(TOKEN)
    async with serve(server):
        yield server


def connection(server: VaultServer, variable: str = "VAULT_RESPONDER_TOKEN") -> SystemConnection:
    return SystemConnection(url=server.url, token=SecretRef(env=variable), timeout_seconds=5)


async def test_revoke_accessor_revokes_the_token_tree(vault: VaultServer) -> None:
    vault.add_token("acc-parent")
    vault.add_token("acc-child", parent="acc-parent")
    vault.add_token("acc-other")
    action = RevokeTokenAccessor(connection(vault))
    params = RevokeAccessorParams(accessor="acc-parent")

    outcome = await action.execute(params)

    assert outcome.state == "done"
    assert set(vault.tokens) == {"acc-other"}
    assert await action.verify(params) is True
    assert await action.verify(RevokeAccessorParams(accessor="acc-other")) is False
    assert ("POST", "/v1/auth/token/revoke-accessor") in vault.requests


async def test_revoke_accessor_twice_is_already_done(vault: VaultServer) -> None:
    vault.add_token("acc-1")
    action = RevokeTokenAccessor(connection(vault))
    params = RevokeAccessorParams(accessor="acc-1")
    await action.execute(params)

    assert (await action.execute(params)).state == "already_done"


async def test_old_vault_answering_invalid_accessor_on_revoke_is_already_done(
    vault: VaultServer,
) -> None:
    vault.idempotent_revoke_accessor = False  # Vault before 1.10
    vault.add_token("acc-1")
    vault.revoked_elsewhere_after_lookup = True

    outcome = await RevokeTokenAccessor(connection(vault)).execute(
        RevokeAccessorParams(accessor="acc-1")
    )

    assert outcome.state == "already_done"
    assert ("POST", "/v1/auth/token/revoke-accessor") in vault.requests


async def test_undo_is_refused(vault: VaultServer) -> None:
    vault.add_token("acc-1")
    action = RevokeTokenAccessor(connection(vault))
    params = RevokeAccessorParams(accessor="acc-1")
    outcome = await action.execute(params)
    with pytest.raises(NotReversible):
        await action.undo(params, outcome)
    assert "acc-1" not in vault.tokens


@pytest.mark.parametrize(("status", "retryable"), [(429, True), (500, True), (503, True)])
async def test_rate_limits_and_server_errors_are_retryable(
    vault: VaultServer, status: int, retryable: bool
) -> None:
    vault.add_token("acc-1")
    vault.fail_next = [(status, {"Retry-After": "7"} if status == 429 else {})]
    action = RevokeTokenAccessor(connection(vault))

    with pytest.raises(ActionError) as raised:
        await action.execute(RevokeAccessorParams(accessor="acc-1"))

    assert raised.value.retryable is retryable
    assert raised.value.status == status
    assert "acc-1" in vault.tokens


async def test_a_refused_token_is_not_retryable_and_never_shown(
    vault: VaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault.add_token("acc-1")
    monkeypatch.setenv("WRONG_TOKEN", "hvs.not-the-right-one")
    action = RevokeTokenAccessor(connection(vault, "WRONG_TOKEN"))

    with pytest.raises(ActionError) as raised:
        await action.execute(RevokeAccessorParams(accessor="acc-1"))

    assert raised.value.status == 403
    assert raised.value.retryable is False
    assert "not-the-right-one" not in str(raised.value)
    assert "policy" in str(raised.value)


async def test_revoke_lease(vault: VaultServer) -> None:
    lease_id = "database/creds/ci/AbC123"
    vault.leases[lease_id] = {"id": lease_id, "renewable": True, "ttl": 600}
    vault.leases["database/creds/ci/other"] = {"id": "database/creds/ci/other", "ttl": 60}
    action = RevokeLease(connection(vault))
    params = RevokeLeaseParams(lease_id=lease_id)

    assert await action.verify(params) is False
    outcome = await action.execute(params)

    assert outcome.state == "done"
    assert list(vault.leases) == ["database/creds/ci/other"]
    assert await action.verify(params) is True
    assert ("PUT", "/v1/sys/leases/revoke") in vault.requests
    assert ("/sys/leases/revoke", {"lease_id": lease_id, "sync": True}) in vault.bodies
    assert (await action.execute(params)).state == "already_done"
    with pytest.raises(NotReversible):
        await action.undo(params, outcome)


async def test_unreachable_vault_is_retryable() -> None:
    action = RevokeLease(SystemConnection(url="http://127.0.0.1:9", timeout_seconds=2))
    with pytest.raises(ActionError) as raised:
        await action.execute(RevokeLeaseParams(lease_id="x/y"))
    assert raised.value.retryable is True


async def test_the_server_rejects_what_the_openapi_does_not_allow(vault: VaultServer) -> None:
    """The stand-in is a real check: a body off the schema or an undescribed query is refused."""
    headers = {"X-Vault-Token": TOKEN}
    async with aiohttp.ClientSession() as session:
        bad_body = await session.post(
            f"{vault.url}/v1/auth/token/revoke-accessor", json={"accessor": 5}, headers=headers
        )
        bad_query = await session.post(
            f"{vault.url}/v1/sys/leases/revoke?force=1", json={"lease_id": "a"}, headers=headers
        )
    assert (bad_body.status, bad_query.status) == (400, 400)
    assert len(vault.violations) == 2
    vault.violations.clear()
