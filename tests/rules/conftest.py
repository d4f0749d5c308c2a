"""Fixtures for the rule engine tests: compile a rule from just its detection section."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
import yaml
from sigma.rule import SigmaRule

from detector.rules import CompiledRule, compile_rule

Placeholders = Mapping[str, Sequence[str | int | float]]


def _from_dict(detection: dict[str, Any], placeholders: Placeholders | None = None) -> CompiledRule:
    document = {"title": "test rule", "logsource": {"product": "test"}, "detection": detection}
    return compile_rule(SigmaRule.from_dict(document), placeholders)


def _from_yaml(detection: str, placeholders: Placeholders | None = None) -> CompiledRule:
    return _from_dict(yaml.safe_load(textwrap.dedent(detection)), placeholders)


@pytest.fixture(scope="session")
def detection() -> Callable[..., CompiledRule]:
    """compile(detection_yaml_text, placeholders=None) -> CompiledRule."""
    return _from_yaml


@pytest.fixture(scope="session")
def detection_dict() -> Callable[..., CompiledRule]:
    """compile(detection_mapping, placeholders=None) -> CompiledRule."""
    return _from_dict
