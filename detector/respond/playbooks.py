"""Playbooks: which detections they answer and the actions they take, one YAML file each.

```yaml
name: stolen-github-token
description: A token used from a new address is revoked, after a person approves.
match:
  rules: [b3aa8717-eaf3-4b5d-945c-1fb9c018d169]   # any of these rule ids ...
  tags: [attack.t1078]                            # ... or any of these tags
  min_level: high
  fields: {group.token.id: "8812345"}             # all of these equal
actions:
  - action: github.revoke_pat_access
    with: {org: octo-org, pat_id: "{{ group['token.id'] }}"}
    mode: approve                                 # dry_run (default) | approve | auto
    continue_on_error: false
    timeout: 60
```

`with` values are strings, numbers, booleans or lists of them; strings are Jinja
templates rendered from the detection in a sandbox (`templates.py`). The mode an
action runs in when none is written is `dry_run`, or `approve` for an action that
cannot be undone; `auto` on such an action must be asked for with
`allow_irreversible_auto: true`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from detector.detections import Detection, Level
from detector.respond.actions.base import Action, registered
from detector.respond.templates import TemplateError, is_template, parse_template

Mode = Literal["dry_run", "approve", "auto"]
#: a parameter value: no mappings, so a template can never build a structure
ParamValue = str | int | float | bool | list[str | int | float | bool]

LEVELS: tuple[Level, ...] = ("informational", "low", "medium", "high", "critical")


class Match(BaseModel):
    """Which detections a playbook answers: every given criterion must hold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[str] = Field(default_factory=list, description="Rule ids; any of them.")
    tags: list[str] = Field(
        default_factory=list, description="Rule tags (attack.t1078, ...); any of them."
    )
    min_level: Level | None = Field(default=None, description="The rule's level at least.")
    fields: dict[str, str | int | bool | list[str | int | bool]] = Field(
        default_factory=dict,
        description="Dotted path → value (or any of a list). `group.<key>` reads the "
        "correlation group, `event.<field>` the normalized event that completed the "
        "detection, any other path the detection itself (`rule.level`, `evidence.0.source`).",
    )

    @model_validator(mode="after")
    def _not_everything(self) -> Match:
        if not (self.rules or self.tags or self.min_level or self.fields):
            raise ValueError("`match` needs at least one of rules, tags, min_level, fields")
        return self

    def matches(self, detection: Detection, context: Mapping[str, Any]) -> bool:
        rule = detection.rule
        if self.rules and rule.id not in self.rules:
            return False
        if self.tags and not {t.lower() for t in self.tags} & {t.lower() for t in rule.tags}:
            return False
        if self.min_level is not None and (
            rule.level is None or LEVELS.index(rule.level) < LEVELS.index(self.min_level)
        ):
            return False
        for path, wanted in self.fields.items():
            found = lookup(context, path)
            if isinstance(wanted, list):
                if found not in wanted:
                    return False
            elif found != wanted:
                return False
        return True


_MISSING = object()


def lookup(context: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted `path` of the template context, `None` when absent.

    `group.` and `event.` take the rest of the path as one key (their keys are dotted
    field names themselves); other paths walk the detection, list items by index.
    """
    head, _, rest = path.partition(".")
    if head in ("group", "event"):
        section = context.get(head) or {}
        return section.get(rest)
    value: Any = context["detection"]
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part, _MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
        if value is _MISSING:
            return None
    return value


class Step(BaseModel):
    """One action of a playbook."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    action: str = Field(description="A registered action name, e.g. github.disable_workflow.")
    with_: dict[str, ParamValue] = Field(
        default_factory=dict,
        alias="with",
        description="The action's parameters; strings are templates over the detection.",
    )
    mode: Mode | None = Field(
        default=None,
        description="dry_run, approve or auto. Default: dry_run, or approve for an action "
        "that cannot be undone.",
    )
    allow_irreversible_auto: bool = Field(
        default=False, description="Let `auto` run an action that cannot be undone."
    )
    continue_on_error: bool = Field(
        default=False, description="Go on with the next actions when this one fails."
    )
    timeout: float = Field(default=60.0, gt=0, le=3600, description="Seconds, all attempts.")

    def effective_mode(self, action: type[Action[Any]]) -> Mode:
        if self.mode is not None:
            return self.mode
        return "dry_run" if action.reversible else "approve"


class Playbook(BaseModel):
    """A response playbook (`playbooks/*.yml`)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="Playbook",
        json_schema_extra={"$id": "https://detector.invalid/schemas/playbook.schema.json"},
    )

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="Unique among playbooks.")
    description: str = ""
    match: Match
    actions: list[Step] = Field(min_length=1)


def json_schema() -> dict[str, Any]:
    """The JSON Schema committed as `schemas/playbook.schema.json`."""
    schema = Playbook.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


@dataclass(frozen=True)
class PlaybookProblem:
    """Why a playbook file (or a part of it, `where`) cannot be used."""

    path: Path
    where: str
    message: str

    def __str__(self) -> str:
        return (
            f"{self.path}: {self.where}: {self.message}"
            if self.where
            else (f"{self.path}: {self.message}")
        )


@dataclass(frozen=True)
class LoadedPlaybooks:
    playbooks: list[Playbook]
    problems: list[PlaybookProblem]


def playbook_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml")))
        else:
            files.append(path)
    return files


def load_playbooks(paths: Iterable[Path]) -> LoadedPlaybooks:
    """Every playbook under `paths`, checked against the registered actions; a playbook
    with any problem is left out and its problems are listed."""
    playbooks: list[Playbook] = []
    problems: list[PlaybookProblem] = []
    seen: dict[str, Path] = {}
    for path in playbook_files(paths):
        playbook, found = read_playbook(path)
        if playbook is not None and playbook.name in seen:
            found.append(
                PlaybookProblem(path, "name", f"{playbook.name!r} is also in {seen[playbook.name]}")
            )
        problems.extend(found)
        if playbook is not None and not found:
            seen[playbook.name] = path
            playbooks.append(playbook)
    return LoadedPlaybooks(playbooks, problems)


def read_playbook(path: Path) -> tuple[Playbook | None, list[PlaybookProblem]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return None, [PlaybookProblem(path, "", f"cannot be read: {exc}")]
    try:
        playbook = Playbook.model_validate(data)
    except ValidationError as exc:
        return None, [
            PlaybookProblem(path, ".".join(str(p) for p in error["loc"]), error["msg"])
            for error in exc.errors()
        ]
    problems = [
        PlaybookProblem(path, f"actions.{index}{where}", message)
        for index, step in enumerate(playbook.actions)
        for where, message in check_step(step)
    ]
    return playbook, problems


def check_step(step: Step) -> list[tuple[str, str]]:
    """(where, message) of each problem of one step: unknown action, a template that does
    not parse, parameters the action does not take or misses, literal values it refuses,
    and `auto` on an irreversible action without `allow_irreversible_auto`."""
    action = registered().get(step.action)
    if action is None:
        return [(".action", f"unknown action {step.action!r}")]
    problems: list[tuple[str, str]] = []
    irreversible_auto = step.effective_mode(action) == "auto" and not action.reversible
    if irreversible_auto and not step.allow_irreversible_auto:
        problems.append(
            (".mode", f"{step.action} cannot be undone: `auto` needs allow_irreversible_auto: true")
        )
    templated: set[str] = set()
    for key, value in step.with_.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and is_template(item):
                templated.add(key)
                try:
                    parse_template(item)
                except TemplateError as exc:
                    problems.append((f".with.{key}", str(exc)))
    fields = action.params_model.model_fields
    accepted = {name for name in fields} | {f.alias for f in fields.values() if f.alias}
    for key in step.with_:
        if key not in accepted:
            problems.append((f".with.{key}", f"{step.action} takes no parameter {key!r}"))
    for name, field in fields.items():
        if field.is_required() and name not in step.with_ and field.alias not in step.with_:
            problems.append((".with", f"{step.action} needs parameter {name!r}"))
    if not templated and not problems:
        try:
            action.params_model.model_validate(step.with_)
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(str(p) for p in error["loc"])
                problems.append((f".with.{where}" if where else ".with", error["msg"]))
    else:
        literal = {k: v for k, v in step.with_.items() if k not in templated and k in accepted}
        problems.extend(_literal_problems(action, literal))
    return problems


def _literal_problems(
    action: type[Action[Any]], literal: dict[str, ParamValue]
) -> list[tuple[str, str]]:
    """Errors on the literal parameters only: missing ones are the templated ones."""
    try:
        action.params_model.model_validate(literal)
    except ValidationError as exc:
        return [
            (f".with.{'.'.join(str(p) for p in error['loc'])}", error["msg"])
            for error in exc.errors()
            if error["type"] != "missing" and error["loc"] and error["loc"][0] in literal
        ]
    return []
