"""Configuration: one YAML file, overridden by `DETECTOR_*` environment variables.

Nested keys join with a double underscore in the environment, for example
`DETECTOR_SOURCES__JENKINS_TIMEZONE=Europe/Berlin`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from detector.normalize.declared import DeclaredSource


class ConfigError(ValueError):
    """A configuration file that cannot be read or is invalid; the message says where."""


class SourcesSettings(BaseModel):
    """How sources are read."""

    model_config = ConfigDict(extra="forbid")

    jenkins_timezone: str = Field(
        default="UTC",
        description="IANA zone of Jenkins audit-trail dates, which carry no zone of their own.",
    )
    declared: list[DeclaredSource] = Field(
        default_factory=list, description="Extra JSON audit sources read as they are."
    )

    @field_validator("jenkins_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone_of(value)
        return value


class Settings(BaseSettings):
    """The whole configuration."""

    model_config = SettingsConfigDict(
        env_prefix="DETECTOR_", env_nested_delimiter="__", extra="forbid"
    )

    sources: SourcesSettings = Field(default_factory=SourcesSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file (passed as init values).
        return env_settings, init_settings


def zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def load_settings(path: Path | None) -> Settings:
    """Settings from `path` (if given) and the environment; errors name the file."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        data = loaded or {}
    try:
        return Settings(**data)
    except ValueError as exc:
        where = str(path) if path else "environment"
        raise ConfigError(f"{where}: {exc}") from exc
