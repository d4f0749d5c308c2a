"""Configuration of the responders (the `responders:` section).

```yaml
responders:
  playbooks: [playbooks/]
  state: /var/lib/detector/responder.sqlite3
  audit: /var/log/detector/actions.jsonl
  systems:
    github: {url: https://api.github.com, token: {env: GITHUB_RESPONDER_TOKEN}}
    kubernetes: {url: https://kubernetes.default.svc, token: {file: /var/run/secrets/token}}
  own_identities:                    # the engine's own accounts: never acted on
    - {system: kubernetes, name: "detector/detector"}
  protected:                         # break-glass accounts, system namespaces ...
    - {system: github, name: "break-glass-*"}
    - {system: kubernetes, name: "kube-system/*"}
  rate_limit: {window_seconds: 3600, total: 20, per_action: {github.block_user: 3}}
  approval_ttl_seconds: 86400
  approvers:
    - {name: alice, token: {env: DETECTOR_APPROVER_ALICE}}
```
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from detector.respond.actions.base import SystemConnection, Target
from detector.secrets import SecretRef


class ProtectedTarget(BaseModel):
    """Targets no action may change: `name` is a glob (`*`, `?`, `[...]`), case-sensitive."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    system: str = Field(description="github, gitlab, kubernetes, jenkins, vault, or `*`.")
    name: str = Field(min_length=1, description="Glob over the target name.")

    def covers(self, target: Target) -> bool:
        return fnmatchcase(target.system, self.system) and fnmatchcase(target.name, self.name)


class RateLimit(BaseModel):
    """How many actions may run on their own per sliding window; beyond that they wait
    for a person (pending approval) instead of running."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_seconds: float = Field(default=3600.0, gt=0)
    total: int = Field(default=20, ge=0, description="All actions together.")
    per_action: dict[str, int] = Field(
        default_factory=dict, description="Action name → cap; actions not named: `default`."
    )
    default: int = Field(default=5, ge=0, description="Cap of each action not in per_action.")

    def cap_of(self, action: str) -> int:
        return self.per_action.get(action, self.default)


class Approver(BaseModel):
    """A person allowed to approve, reject and undo over HTTP, and their bearer token."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
    token: SecretRef


class RespondersSettings(BaseModel):
    """Playbooks, the systems actions call, and the safety rules around them."""

    model_config = ConfigDict(extra="forbid")

    playbooks: list[Path] = Field(
        default_factory=list, description="Playbook files and directories; none: no responders."
    )
    state: Path = Field(
        default=Path("detector.responder.sqlite3"),
        description="Idempotency keys, approvals and the rate window; survives restarts.",
    )
    audit: Path = Field(
        default=Path("detector.actions.jsonl"),
        description="The audit trail: one JSON line per action record, append-only.",
    )
    systems: dict[str, SystemConnection] = Field(
        default_factory=dict, description="Where each system's API is, and its credential."
    )
    own_identities: list[ProtectedTarget] = Field(
        default_factory=list, description="The engine's own accounts; never acted on."
    )
    protected: list[ProtectedTarget] = Field(
        default_factory=list, description="Other targets no action may change."
    )
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    approval_ttl_seconds: float = Field(
        default=86_400.0, gt=0, description="A pending approval expires (is denied) after this."
    )
    approvers: list[Approver] = Field(
        default_factory=list, description="Who may decide over HTTP; none: no /actions routes."
    )
    max_request_bytes: int = Field(default=4096, ge=64, le=1 << 20)

    def protection_of(self, target: Target) -> ProtectedTarget | None:
        for entry in (*self.own_identities, *self.protected):
            if entry.covers(target):
                return entry
        return None
