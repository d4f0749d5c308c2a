"""Vault response actions: revoke a token by its accessor, revoke a lease.

Both are irreversible: Vault has no call that brings a revoked token or lease back, the
owner must be issued new credentials. hvac is synchronous, so each call runs in a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import hvac
import hvac.exceptions
import requests
from pydantic import BaseModel, ConfigDict, Field

from detector.respond.actions.base import (
    Action,
    ActionError,
    ActionOutcome,
    SystemConnection,
    Target,
    register,
)
from detector.respond.actions.errors import status_error

_STATUS = {
    hvac.exceptions.InvalidRequest: 400,
    hvac.exceptions.Unauthorized: 401,
    hvac.exceptions.Forbidden: 403,
    hvac.exceptions.InvalidPath: 404,
    hvac.exceptions.RateLimitExceeded: 429,
    hvac.exceptions.InternalServerError: 500,
    hvac.exceptions.VaultNotInitialized: 501,
    hvac.exceptions.BadGateway: 502,
    hvac.exceptions.VaultDown: 503,
}
_MEANING = {
    401: "the Vault token is missing or invalid",
    403: "the Vault token's policy does not allow this call",
}
T = TypeVar("T")


def _status(exc: hvac.exceptions.VaultError) -> int | None:
    return next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), None)


def _says(exc: hvac.exceptions.VaultError, phrase: str) -> bool:
    return any(phrase in str(error) for error in exc.errors or ())


class _VaultAction(Action[Any]):
    system = "vault"
    reversible = False

    def __init__(self, connection: SystemConnection) -> None:
        super().__init__(connection)

    def _client(self) -> hvac.Client:
        token = self.connection.token.read() if self.connection.token else None
        return hvac.Client(
            url=self.connection.url,
            token=token,
            verify=self.connection.verify_tls,
            timeout=self.connection.timeout_seconds,
        )

    async def _call(self, what: str, call: Callable[[hvac.Client], T]) -> T:
        """Run one hvac call; Vault's answers become ActionErrors that never carry the token."""

        def run() -> T:
            return call(self._client())

        try:
            return await asyncio.to_thread(run)
        except hvac.exceptions.VaultError as exc:
            status = _status(exc)
            errors = "; ".join(str(e) for e in exc.errors or ()) or type(exc).__name__
            meaning = _MEANING.get(status or 0, errors)
            raise status_error(
                f"Vault refused to {what} (HTTP {status or 'error'}): {meaning}", status
            ) from None
        except requests.exceptions.SSLError:
            raise ActionError(
                f"Vault's TLS certificate was not verified while trying to {what}"
            ) from None
        except requests.RequestException as exc:
            raise ActionError(
                f"Vault did not answer while trying to {what}: {type(exc).__name__}",
                retryable=True,
            ) from None

    async def _lookup(self, what: str, call: Callable[[hvac.Client], Any], gone: str) -> bool:
        """True when the object still exists; Vault answers 400 with `gone` once it is revoked."""
        try:
            await self._call(what, call)
        except ActionError as exc:
            if exc.status in (400, 403, 404) and gone in str(exc):
                return False
            raise
        return True


class RevokeAccessorParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accessor: str = Field(min_length=1, description="The token's accessor, never the token.")
    mount_point: str = Field(default="token", description="Where the token auth method is.")


@register
class RevokeTokenAccessor(_VaultAction):
    """Revoke the token behind an accessor, and all its child tokens."""

    name = "vault.revoke_token_accessor"
    description = "Revoke a Vault token and its children by accessor (auth/token/revoke-accessor)."
    permissions = (
        'path "auth/token/revoke-accessor" { capabilities = ["update"] }',
        'path "auth/token/lookup-accessor" { capabilities = ["update"] }',
    )
    params_model = RevokeAccessorParams

    def targets(self, params: RevokeAccessorParams) -> list[Target]:
        return [Target(kind="identity", system="vault", name=f"accessor:{params.accessor}")]

    async def _exists(self, params: RevokeAccessorParams) -> bool:
        return await self._lookup(
            "look up the token accessor",
            lambda c: c.auth.token.lookup_accessor(params.accessor, mount_point=params.mount_point),
            "invalid accessor",
        )

    async def execute(self, params: RevokeAccessorParams) -> ActionOutcome:
        if not await self._exists(params):
            return ActionOutcome(state="already_done", detail="the accessor is already invalid")
        try:
            await self._call(
                "revoke the token accessor",
                lambda c: c.auth.token.revoke_accessor(
                    params.accessor, mount_point=params.mount_point
                ),
            )
        except ActionError as exc:
            # Before Vault 1.10 a second revoke answered 400 "invalid accessor".
            if exc.status == 400 and "invalid accessor" in str(exc):
                return ActionOutcome(state="already_done", detail="the accessor is already invalid")
            raise
        return ActionOutcome(state="done", detail="token and its children revoked")

    async def verify(self, params: RevokeAccessorParams) -> bool:
        return not await self._exists(params)


class RevokeLeaseParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lease_id: str = Field(min_length=1, description="e.g. database/creds/ci/AbC123")


@register
class RevokeLease(_VaultAction):
    """Revoke one lease now; the secrets engine deletes the credential it stands for."""

    name = "vault.revoke_lease"
    description = "Revoke one Vault lease now (sys/leases/revoke with sync)."
    permissions = (
        'path "sys/leases/revoke" { capabilities = ["update"] }',
        'path "sys/leases/lookup" { capabilities = ["update"] }',
    )
    params_model = RevokeLeaseParams

    def targets(self, params: RevokeLeaseParams) -> list[Target]:
        return [Target(kind="resource", system="vault", name=f"lease:{params.lease_id}")]

    async def _exists(self, params: RevokeLeaseParams) -> bool:
        return await self._lookup(
            "look up the lease",
            lambda c: c.sys.read_lease(params.lease_id),
            "invalid lease",
        )

    async def execute(self, params: RevokeLeaseParams) -> ActionOutcome:
        # Vault answers 204 for an unknown lease too, so ask first to tell the two apart.
        if not await self._exists(params):
            return ActionOutcome(state="already_done", detail="the lease is already gone")
        # sync: Vault answers once the secrets engine has revoked the credential, instead of
        # queueing the revocation (what the CLI does unless told -sync).
        body = {"lease_id": params.lease_id, "sync": True}
        await self._call(
            "revoke the lease", lambda c: c.adapter.put("/v1/sys/leases/revoke", json=body)
        )
        return ActionOutcome(state="done", detail="lease revoked")

    async def verify(self, params: RevokeLeaseParams) -> bool:
        return not await self._exists(params)
