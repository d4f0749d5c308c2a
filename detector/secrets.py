"""Secrets come from the environment or from files, never from the configuration file.

The configuration names where a secret is (`{env: NAME}` or `{file: PATH}`); it is read
when the component that needs it is built, and error messages say where it was looked
for, never what it holds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SecretError(ValueError):
    """A secret that cannot be read or used; the message names where, never a value."""


class SecretRef(BaseModel):
    """Where a secret is: an environment variable or a file, exactly one of them."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of the environment variable.",
    )
    file: Path | None = Field(
        default=None, description="Path of a file holding the secret (surrounding blanks cut)."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.env is None) == (self.file is None):
            raise ValueError("a secret needs exactly one of `env` (a variable name) or `file`")
        return self

    def where(self) -> str:
        return f"environment variable {self.env}" if self.env else f"file {self.file}"

    def read(self, environ: Mapping[str, str] | None = None) -> str:
        """The secret itself. An empty one is an error, so nothing is open by accident."""
        if self.file is not None:
            try:
                value = self.file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise SecretError(
                    f"cannot read the secret from {self.where()}: {exc.strerror}"
                ) from None
            except UnicodeDecodeError:
                raise SecretError(f"the secret in {self.where()} is not UTF-8 text") from None
        else:
            value = (os.environ if environ is None else environ).get(str(self.env), "").strip()
        if not value:
            raise SecretError(f"the secret in {self.where()} is missing or empty")
        return value
