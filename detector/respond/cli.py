"""`detector playbooks lint` and `detector actions list|approve|reject|undo`.

The `actions` commands work on the state and audit files named by the configuration's
`responders:` section, the same ones the running service uses (SQLite serialises the
two; a decision is a compare-and-set, so it takes effect once).
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

import click
import orjson
from rich.console import Console
from rich.table import Table

from detector.config import ConfigError, load_settings
from detector.redact import redact_text
from detector.respond.audit import ActionRecord, Status, overview
from detector.respond.factory import PlaybooksNotLoadedError, open_responder
from detector.respond.playbooks import load_playbooks, playbook_files
from detector.respond.responder import Responder, ResponderError

DEFAULT_PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"

stdout = Console(highlight=False)


@click.group()
def playbooks() -> None:
    """Response playbooks."""


@playbooks.command("lint")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path, exists=True))
def playbooks_lint(paths: tuple[Path, ...]) -> None:
    """Check playbooks (default: the shipped playbooks/): their format, action names,
    parameters and templates. Exits 1 when any has a problem."""

    chosen = list(paths) or [DEFAULT_PLAYBOOKS]
    loaded = load_playbooks(chosen)
    for problem in loaded.problems:  # one line each, never wrapped: editors jump to them
        click.echo(str(problem), err=True)
    files = len(playbook_files(chosen))
    click.echo(f"{files} files, {len(loaded.playbooks)} playbooks ok", err=True)
    if loaded.problems:
        raise SystemExit(1)


@click.group()
def actions() -> None:
    """Response actions: list them, decide pending ones, undo executed ones."""


_CONFIG = click.option(
    "--config", type=click.Path(path_type=Path, dir_okay=False, exists=True), required=True
)
_AS = click.option(
    "--as", "person", default=None, help="Who decides (recorded). Default: the login name."
)


@contextmanager
def _responder(config: Path) -> Iterator[Responder]:
    try:
        settings = load_settings(config)
        responder = open_responder(settings.responders)
    except (ConfigError, PlaybooksNotLoadedError) as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        yield responder
    except ResponderError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        responder.close()


@actions.command("list")
@_CONFIG
@click.option(
    "--status",
    type=click.Choice(get_args(Status)),
)
@click.option("--json", "as_json", is_flag=True, help="JSON lines, parameters redacted.")
def actions_list(config: Path, status: str | None, as_json: bool) -> None:
    """The latest actions, newest first (pending approvals past their time expire)."""
    with _responder(config) as responder:
        responder.expire()
        rows = responder.store.listing(status)
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(overview(row)))
        return
    table = Table()
    table.add_column("id", no_wrap=True, min_width=12)
    for name in ("status", "action", "playbook", "step", "targets", "created", "reason"):
        table.add_column(name)
    for row in rows:
        table.add_row(
            row.id[:12],
            row.status,
            row.action,
            row.playbook,
            str(row.step),
            redact_text(", ".join(f"{t.system}:{t.name}" for t in row.targets)),
            datetime.fromtimestamp(row.created, UTC).strftime("%Y-%m-%d %H:%M:%S"),
            redact_text(row.reason),
        )
    stdout.print(table)


@actions.command("approve")
@click.argument("action_id")
@_CONFIG
@_AS
def actions_approve(action_id: str, config: Path, person: str | None) -> None:
    """Approve a pending action: it runs now, from this command."""
    with _responder(config) as responder:
        records = asyncio.run(responder.approve(action_id, person or getpass.getuser()))
    _print(records)
    if records[-1].status != "executed":
        raise SystemExit(1)


@actions.command("reject")
@click.argument("action_id")
@_CONFIG
@_AS
@click.option("--reason", default="", help="Why, for the audit trail.")
def actions_reject(action_id: str, config: Path, person: str | None, reason: str) -> None:
    """Reject a pending action (and the pending steps after it in its playbook)."""
    with _responder(config) as responder:
        _print(responder.reject(action_id, person or getpass.getuser(), reason))


@actions.command("undo")
@click.argument("action_id")
@_CONFIG
@_AS
def actions_undo(action_id: str, config: Path, person: str | None) -> None:
    """Reverse an executed action, or the part a failed one changed, where its API has an
    inverse."""
    with _responder(config) as responder:
        _print([asyncio.run(responder.undo(action_id, person or getpass.getuser()))])


def _print(records: list[ActionRecord]) -> None:
    for record in records:
        reason = f": {record.reason}" if record.reason else ""
        stdout.print(f"{record.id[:12]} {record.status} {record.action} by {record.actor}{reason}")
