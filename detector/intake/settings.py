"""Settings of the HTTP intake: listener, limits, TLS and the credential of each route.

Credentials are never written in the configuration itself: a route names the
environment variable or the file that holds its secret, and the secret is read once
when the application is built. A route without settings is not served at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from detector.secrets import SecretRef

#: A source name as `event.source` spells it (the same rule as declared sources).
SourceName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]

MIB = 1 << 20


class IntakeConfigError(ValueError):
    """The intake cannot be built from its settings; the message names the route."""


class RouteSettings(BaseModel):
    """One route: served when present and enabled; its credential is required."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="Set false to stop serving the route.")
    secret: SecretRef = Field(
        description="Bearer token (kubernetes), verification token (gitlab), webhook "
        "secret (github) or `whsec_` signing secret (generic)."
    )
    require_client_cert: bool = Field(
        default=False,
        description="Also require a TLS client certificate signed by `tls.client_ca_file`.",
    )


class TLSSettings(BaseModel):
    """Server certificate, and the CA that client certificates must chain to (mTLS)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cert_file: Path = Field(description="PEM certificate chain of the server.")
    key_file: Path = Field(description="PEM private key of the server.")
    client_ca_file: Path | None = Field(
        default=None, description="PEM CA bundle that verifies client certificates."
    )


class IntakeSettings(BaseModel):
    """The authenticated HTTP intake of `detector run`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8080, ge=0, le=65535, description="TCP port (0: any free port).")
    tls: TLSSettings | None = Field(default=None, description="Serve HTTPS; plain HTTP if absent.")
    max_body_bytes: int = Field(
        default=10 * MIB,
        ge=1,
        description="Largest accepted request body (after Content-Encoding); 413 past it. "
        "The default equals the Kubernetes webhook's truncated maximum batch.",
    )
    queue_capacity_bytes: int = Field(
        default=64 * MIB,
        ge=1,
        description="Memory the queue of accepted records may hold (bytes plus per-record "
        "overhead); a batch that does not fit gets 429.",
    )
    max_concurrent_requests: int = Field(
        default=32,
        ge=1,
        description="Request bodies read at once; more get 429, so in-flight memory stays "
        "below max_concurrent_requests × max_body_bytes.",
    )
    body_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Time allowed to receive a body; 408 past it."
    )
    retry_after_seconds: int = Field(
        default=5, ge=1, description="`Retry-After` of 429 and 503 answers."
    )
    webhook_tolerance_seconds: int = Field(
        default=300,
        ge=1,
        le=300,
        description="Largest skew of a Standard Webhooks `webhook-timestamp` from now; the "
        "standardwebhooks library never accepts more than 300.",
    )
    kubernetes: RouteSettings | None = Field(
        default=None, description="POST /intake/kubernetes: the API server's audit webhook."
    )
    gitlab: RouteSettings | None = Field(
        default=None, description="POST /intake/gitlab: GitLab audit event streaming."
    )
    github: RouteSettings | None = Field(
        default=None, description="POST /intake/github: GitHub webhooks."
    )
    generic: dict[SourceName, RouteSettings] = Field(
        default_factory=dict,
        description="POST /intake/generic/{source}: Standard Webhooks, one secret per source.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.queue_capacity_bytes < self.max_body_bytes:
            raise ValueError("queue_capacity_bytes must be at least max_body_bytes")
        for name, route in self.routes().items():
            if route.require_client_cert and (self.tls is None or self.tls.client_ca_file is None):
                raise ValueError(
                    f"route {name} requires client certificates: set tls.client_ca_file"
                )
        return self

    def routes(self) -> dict[str, RouteSettings]:
        """Enabled routes by name (`kubernetes`, `gitlab`, `github`, `generic/<source>`)."""
        named = {"kubernetes": self.kubernetes, "gitlab": self.gitlab, "github": self.github}
        named.update({f"generic/{source}": route for source, route in self.generic.items()})
        return {name: route for name, route in named.items() if route is not None and route.enabled}
