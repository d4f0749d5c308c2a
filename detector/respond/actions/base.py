"""What every response action declares and does.

An action only talks to its system. Safety (protected identities, rate caps, idempotency,
approval, the audit trail, dry runs) is enforced by the responder core around it, never here.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from detector.secrets import SecretRef


class Target(BaseModel):
    """Something an action changes; the core refuses actions on protected targets."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["identity", "resource"]
    system: str = Field(description="github, gitlab, kubernetes, jenkins or vault.")
    name: str = Field(description="User login, token id, 'namespace/serviceaccount', job name ...")


class ActionOutcome(BaseModel):
    """What a call did. `undo_state` keeps what the undo needs (backups, old replica counts).

    `partial`: the call failed after changing something; `undo_state` holds what it changed.
    """

    model_config = ConfigDict(extra="forbid")

    state: Literal["done", "already_done", "partial"]
    detail: str = ""
    undo_state: dict[str, JsonValue] = Field(default_factory=dict)


class ActionError(Exception):
    """A call that failed; `retryable` for 429/5xx/timeouts, so the core can try again later.

    `retry_after`: the seconds the system asked to wait first (Retry-After, a rate limit's
    reset). `undo_state`: set when the call failed halfway, with what undo needs to reverse
    the part already done (the backups of bindings already deleted, say).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        undo_state: dict[str, JsonValue] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.undo_state = undo_state


def merge_undo_state(
    earlier: Mapping[str, JsonValue], later: Mapping[str, JsonValue]
) -> dict[str, JsonValue]:
    """The undo state of two attempts of one call, the first of which failed halfway: lists
    (backups, one per object changed) are joined; any other value keeps the first attempt's,
    which saw the target before any change (an old replica count)."""
    merged = dict(later)
    for key, value in earlier.items():
        after = merged.get(key)
        if isinstance(value, list) and isinstance(after, list):
            merged[key] = [*value, *after]
        else:
            merged[key] = value
    return merged


class NotReversible(ActionError):
    """Raised by `undo` of an action whose API has no inverse."""


class SystemConnection(BaseModel):
    """Where a system's API is and how to authenticate; the secret is read per client."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        description="API base URL, e.g. https://api.github.com or https://gitlab.example.com."
    )
    token: SecretRef | None = None
    verify_tls: bool | str = Field(default=True, description="False, True, or a CA bundle path.")
    timeout_seconds: float = Field(default=10.0, gt=0)


ParamsT = TypeVar("ParamsT", bound=BaseModel)


class Action(ABC, Generic[ParamsT]):
    """One kind of response call. Subclasses declare their contract as class attributes."""

    name: ClassVar[str]  # "github.disable_workflow"
    system: ClassVar[str]  # "github"
    description: ClassVar[str]
    permissions: ClassVar[tuple[str, ...]]  # the scopes/verbs the credential needs
    reversible: ClassVar[bool]
    params_model: ClassVar[type[BaseModel]]

    def __init__(self, connection: SystemConnection) -> None:
        self.connection = connection

    @abstractmethod
    def targets(self, params: ParamsT) -> list[Target]:
        """The identities and resources this call would change."""

    @abstractmethod
    async def execute(self, params: ParamsT) -> ActionOutcome:
        """Make the call; 'already_done' when the API says the target is already in that state."""

    @abstractmethod
    async def verify(self, params: ParamsT) -> bool:
        """Re-read the target: True only when the effect is visible (many APIs answer 202 first)."""

    async def undo(self, params: ParamsT, outcome: ActionOutcome) -> ActionOutcome:
        raise NotReversible(f"{self.name} cannot be undone through the API")


_ACTIONS: dict[str, type[Action[Any]]] = {}
#: The modules of the built-in actions: each registers its actions when it is imported.
_BUILT_IN = ("github", "gitlab", "jenkins", "kubernetes", "vault")

ActionT = TypeVar("ActionT", bound=type[Action[Any]])


def register(action: ActionT) -> ActionT:
    """Class decorator: make an action available to playbooks under its `name`."""
    if action.name in _ACTIONS:
        raise ValueError(f"two actions are named {action.name}")
    _ACTIONS[action.name] = action
    return action


def registered() -> dict[str, type[Action[Any]]]:
    """Every action by name. The built-in ones are imported on the first call: their API
    clients (githubkit, kubernetes-asyncio...) take half a second to import, which a
    command that runs no playbook should not wait for."""
    for module in _BUILT_IN:
        importlib.import_module(f"detector.respond.actions.{module}")
    return _ACTIONS
