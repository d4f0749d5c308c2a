"""Configuration: one YAML file, overridden by `DETECTOR_*` environment variables.

Nested keys join with a double underscore in the environment, for example
`DETECTOR_SOURCES__JENKINS_TIMEZONE=Europe/Berlin`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from detector.identity import IdentitySettings
from detector.intake.settings import IntakeSettings
from detector.normalize.declared import DeclaredSource
from detector.respond.settings import RespondersSettings
from detector.runtime.kafka.settings import KafkaSettings
from detector.search.connection import SearchConnection
from detector.sinks.settings import SinksSettings
from detector.sources.follow import FollowedFile

#: The shipped rule pack: `rules/` beside the package.
DEFAULT_RULES = Path(__file__).resolve().parent.parent / "rules"


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
    follow: list[FollowedFile] = Field(
        default_factory=list, description="Log files `detector run` follows as they grow."
    )
    follow_state: Path | None = Field(
        default=None,
        description="Where the followed files' positions are saved "
        "(default: beside the correlation checkpoint).",
    )

    @field_validator("jenkins_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone_of(value)
        return value

    @field_validator("follow")
    @classmethod
    def _followed_once(cls, value: list[FollowedFile]) -> list[FollowedFile]:
        paths = [str(f.path) for f in value]
        twice = sorted({p for p in paths if paths.count(p) > 1})
        if twice:
            raise ValueError(f"followed more than once: {', '.join(twice)}")
        return value

    @model_validator(mode="after")
    def _followed_sources_known(self) -> SourcesSettings:
        # Imported here: the registry is built from these settings.
        from detector.normalize.builtin import build_registry

        known = build_registry(self).names
        for followed in self.follow:
            if followed.source is not None and followed.source not in known:
                raise ValueError(
                    f"{followed.path}: unknown source {followed.source!r} "
                    f"(known: {', '.join(known)})"
                )
        return self


class RulesSettings(BaseModel):
    """Which rules run, and the values of their placeholders (`|expand`)."""

    model_config = ConfigDict(extra="forbid")

    paths: list[Path] = Field(
        default_factory=lambda: [DEFAULT_RULES],
        description="Rule files and directories (default: the shipped pack).",
    )
    placeholders: dict[str, list[str]] = Field(
        default_factory=dict, description="Values of %name% placeholders, by name."
    )
    watch: bool = Field(
        default=True,
        description="Reload when a rule file changes (SIGHUP reloads either way).",
    )


class CorrelationSettings(BaseModel):
    """Event time: how late events may arrive, and the bounds on state."""

    model_config = ConfigDict(extra="forbid")

    allowed_lateness_seconds: float = Field(
        default=300.0,
        ge=0,
        description="How far behind the newest event time an event may arrive and still be "
        "correlated; later ones are dead-lettered as late.",
    )
    max_groups: int = Field(default=100_000, ge=1, description="Live groups per correlation.")
    checkpoint: Path | None = Field(
        default=None, description="Where the correlation state is saved (atomically)."
    )
    checkpoint_every_seconds: float = Field(default=60.0, gt=0)


class ServiceSettings(BaseModel):
    """The running service: where dead letters and staged detections go."""

    model_config = ConfigDict(extra="forbid")

    dead_letter: Path = Field(
        default=Path("detector.deadletter.jsonl"),
        description="Records that cannot be read, with the reason.",
    )
    staging_output: Path = Field(
        default=Path("detector.staging.jsonl"),
        description="Detections of rules with status experimental: never sent to alert sinks.",
    )
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    metrics_host: str = Field(default="127.0.0.1", description="Where /metrics listens.")
    metrics_port: int | None = Field(
        default=9464, ge=0, le=65535, description="Port of /metrics; null turns it off."
    )
    workers: int = Field(
        default=1,
        ge=1,
        description="Above 1: this many worker processes parse, normalize and match the "
        "records, and the service's own process serves the intake, correlates and alerts "
        "(for rates one core cannot take). The embedded runtime only: the Kafka runtime "
        "uses more cores by running more workers.",
    )


class Settings(BaseSettings):
    """The whole configuration."""

    model_config = SettingsConfigDict(
        env_prefix="DETECTOR_",
        env_nested_delimiter="__",
        extra="forbid",
        # A secret pasted into the file by mistake must not come back in an error message.
        hide_input_in_errors=True,
    )

    sources: SourcesSettings = Field(default_factory=SourcesSettings)
    rules: RulesSettings = Field(default_factory=RulesSettings)
    correlation: CorrelationSettings = Field(default_factory=CorrelationSettings)
    intake: IntakeSettings = Field(default_factory=IntakeSettings)
    sinks: SinksSettings = Field(default_factory=SinksSettings)
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    identities: IdentitySettings = Field(default_factory=IdentitySettings)
    responders: RespondersSettings = Field(default_factory=RespondersSettings)
    search: SearchConnection = Field(
        default_factory=SearchConnection,
        description="The Elasticsearch/OpenSearch cluster `replay es://INDEX` reads.",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)

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
