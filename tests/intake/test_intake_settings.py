"""Intake settings: secrets only by reference, no open route, consistent limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from detector.intake.app import create_app
from detector.intake.queue import RecordQueue
from detector.intake.settings import IntakeConfigError, IntakeSettings
from detector.secrets import SecretError, SecretRef
from tests.intake.support import ENVIRON, SOURCES, intake_settings


def test_a_secret_comes_from_exactly_one_place() -> None:
    with pytest.raises(ValidationError, match="exactly one of `env`"):
        SecretRef()
    with pytest.raises(ValidationError, match="exactly one of `env`"):
        SecretRef(env="A", file=Path("/run/secrets/a"))


def test_a_secret_is_never_a_literal_value() -> None:
    with pytest.raises(ValidationError, match="extra"):
        SecretRef.model_validate({"value": "hunter2"})
    with pytest.raises(ValidationError):
        IntakeSettings.model_validate({"gitlab": {"secret": "hunter2"}})


def test_secrets_are_read_from_the_environment_or_a_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("from-a-file\n", encoding="utf-8")
    assert SecretRef(file=path).read({}) == "from-a-file"
    assert SecretRef(env="TOKEN").read({"TOKEN": "from-env"}) == "from-env"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (SecretRef(env="UNSET"), "environment variable UNSET is missing or empty"),
        (SecretRef(env="EMPTY"), "environment variable EMPTY is missing or empty"),
        (SecretRef(file=Path("/nonexistent/token")), "cannot read the secret from file"),
    ],
)
def test_a_missing_or_empty_secret_is_an_error(ref: SecretRef, message: str) -> None:
    with pytest.raises(SecretError, match=message):
        ref.read({"EMPTY": ""})


def test_a_route_without_a_secret_cannot_be_configured() -> None:
    with pytest.raises(ValidationError, match="secret"):
        IntakeSettings.model_validate({"kubernetes": {"enabled": True}})


def test_only_configured_and_enabled_routes_are_served() -> None:
    settings = intake_settings(
        kubernetes=None,
        gitlab={"enabled": False, "secret": {"env": "GITLAB_TOKEN"}},
        generic={"bitbucket": {"secret": {"env": "BITBUCKET_WHSEC"}}},
    )
    assert list(settings.routes()) == ["github", "generic/bitbucket"]
    assert IntakeSettings().routes() == {}


def test_the_queue_must_hold_at_least_one_body() -> None:
    with pytest.raises(ValidationError, match="queue_capacity_bytes must be at least"):
        IntakeSettings(max_body_bytes=2048, queue_capacity_bytes=1024)


def test_the_webhook_tolerance_cannot_exceed_the_library_window() -> None:
    with pytest.raises(ValidationError, match="less than or equal to 300"):
        IntakeSettings(webhook_tolerance_seconds=301)


def test_generic_source_names_follow_event_source_names() -> None:
    with pytest.raises(ValidationError, match="pattern"):
        IntakeSettings.model_validate({"generic": {"Bit-Bucket": {"secret": {"env": "X"}}}})


def build(settings: IntakeSettings, environ: dict[str, str] = ENVIRON) -> None:
    create_app(
        settings,
        RecordQueue(settings.queue_capacity_bytes),
        sources=SOURCES,
        registry=CollectorRegistry(),
        environ=environ,
    )


def test_a_missing_secret_stops_the_build_and_names_the_route_not_the_value() -> None:
    environ = {k: v for k, v in ENVIRON.items() if k != "GITLAB_TOKEN"}
    with pytest.raises(IntakeConfigError) as error:
        build(intake_settings(), environ)
    assert str(error.value) == (
        "intake route gitlab: the secret in environment variable GITLAB_TOKEN is missing or empty"
    )


def test_a_generic_route_for_an_unknown_source_stops_the_build() -> None:
    settings = intake_settings(generic={"nosuch": {"secret": {"env": "BITBUCKET_WHSEC"}}})
    with pytest.raises(IntakeConfigError, match="intake route generic/nosuch: unknown source"):
        build(settings)


def test_a_generic_secret_must_be_a_signing_secret() -> None:
    settings = intake_settings(generic={"bitbucket": {"secret": {"env": "BAD"}}})
    with pytest.raises(IntakeConfigError, match="generic/bitbucket: not a Standard Webhooks"):
        build(settings, ENVIRON | {"BAD": "whsec_!!!"})


def test_settings_nest_under_the_environment_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    class Main(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="DETECTOR_", env_nested_delimiter="__")
        intake: IntakeSettings = Field(default_factory=IntakeSettings)

    monkeypatch.setenv("DETECTOR_INTAKE__PORT", "9443")
    monkeypatch.setenv("DETECTOR_INTAKE__GITLAB__SECRET__FILE", "/run/secrets/gitlab")
    monkeypatch.setenv("DETECTOR_INTAKE__GENERIC__BITBUCKET__SECRET__ENV", "BB_WHSEC")
    intake = Main().intake
    assert intake.port == 9443
    assert intake.gitlab is not None
    assert intake.gitlab.secret == SecretRef(file=Path("/run/secrets/gitlab"))
    assert intake.generic["bitbucket"].secret == SecretRef(env="BB_WHSEC")
