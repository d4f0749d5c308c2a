"""Playbook files: the format, `detector playbooks lint`, matching detections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from detector.cli import main
from detector.detections import RuleRef
from detector.respond.playbooks import Match
from detector.respond.responder import template_context
from tests.respond.core.counting import RULE, detection


def _write(directory: Path, name: str, steps: list[dict[str, Any]], **match: Any) -> Path:
    path = directory / f"{name}.yml"
    document = {"name": name, "match": match or {"rules": [RULE.id]}, "actions": steps}
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def _lint(*paths: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["playbooks", "lint", *map(str, paths)])
    return result.exit_code, result.output


def test_a_valid_playbook_passes(tmp_path: Path) -> None:
    _write(tmp_path, "ok", [{"action": "test.block", "with": {"user": "{{ actor }}"}}])
    code, output = _lint(tmp_path)
    assert code == 0, output
    assert "1 playbooks ok" in output


@pytest.mark.parametrize(
    ("step", "where", "message"),
    [
        ({"action": "test.nothing"}, "actions.0.action", "unknown action 'test.nothing'"),
        ({"action": "test.block", "with": {}}, "actions.0.with", "needs parameter 'user'"),
        (
            {"action": "test.block", "with": {"user": "x", "usr": "y"}},
            "actions.0.with.usr",
            "takes no parameter 'usr'",
        ),
        ({"action": "test.block", "with": {"user": [1]}}, "actions.0.with.user", "valid string"),
        (
            {"action": "test.block", "with": {"user": "{{ actor"}},
            "actions.0.with.user",
            "template does not parse",
        ),
        (
            {"action": "test.wipe", "with": {"user": "x"}, "mode": "auto"},
            "actions.0.mode",
            "allow_irreversible_auto",
        ),
        ({"action": "test.block", "with": {"user": {"a": 1}}}, "actions.0.with.user", "str"),
        ({"action": "test.block", "mode": "sometimes"}, "actions.0.mode", "dry_run"),
    ],
)
def test_problems_name_the_file_and_the_path(
    tmp_path: Path, step: dict[str, Any], where: str, message: str
) -> None:
    path = _write(tmp_path, "bad", [step])
    code, output = _lint(path)
    assert code == 1
    assert f"{path}: {where}" in output
    assert message in output


def test_irreversible_auto_is_allowed_when_asked_for(tmp_path: Path) -> None:
    step = {"action": "test.wipe", "with": {"user": "x"}, "mode": "auto"}
    _write(tmp_path, "wipe", [{**step, "allow_irreversible_auto": True}])
    assert _lint(tmp_path)[0] == 0


def test_two_playbooks_with_one_name_are_an_error(tmp_path: Path) -> None:
    step = [{"action": "test.block", "with": {"user": "x"}}]
    _write(tmp_path, "same", step)
    (tmp_path / "copy.yml").write_text((tmp_path / "same.yml").read_text())
    code, output = _lint(tmp_path)
    assert code == 1
    assert "is also in" in output


def test_an_empty_match_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Match()


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ({"rules": [RULE.id]}, True),
        ({"rules": ["other"]}, False),
        ({"tags": ["attack.t1078"]}, True),
        ({"tags": ["ATTACK.T1078"]}, True),
        ({"tags": ["attack.t1485"]}, False),
        ({"min_level": "high"}, True),
        ({"min_level": "critical"}, False),
        ({"rules": [RULE.id], "min_level": "critical"}, False),
        ({"fields": {"group.user.name": "mallory"}}, True),
        ({"fields": {"group.user.name": ["eve", "mallory"]}}, True),
        ({"fields": {"group.user.name": "eve"}}, False),
        ({"fields": {"evidence.0.source": "github", "rule.level": "high"}}, True),
        ({"fields": {"evidence.3.source": "github"}}, False),
    ],
)
def test_match(match: dict[str, Any], expected: bool) -> None:
    found = detection(1)
    assert Match.model_validate(match).matches(found, template_context(found, None)) is expected


def test_a_rule_without_level_never_passes_a_minimum() -> None:
    found = detection(1, rule=RuleRef(id="x", title="x"))
    context = template_context(found, None)
    assert not Match(min_level="informational").matches(found, context)
