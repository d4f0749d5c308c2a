"""The responder's durable state, in one SQLite file shared by the service and the CLI.

- `actions`: one row per (detection, playbook, step), keyed by its id: a redelivered
  detection or a restarted service finds the row and never plans or runs the step again.
  The row holds the rendered parameters (unredacted: an approval made later must run
  exactly what was planned), so the file is created readable by its owner only.
- `runs`: when each action started running, for the sliding rate window.

Every status change is a compare-and-set (`UPDATE … WHERE status = ?`): two approvals
of one action, from the CLI and over HTTP at once, run it once.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from detector.respond.actions.base import Target

_SCHEMA = """
CREATE TABLE IF NOT EXISTS actions (
    id TEXT PRIMARY KEY,
    detection_id TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    playbook TEXT NOT NULL,
    step INTEGER NOT NULL,
    action TEXT NOT NULL,
    system TEXT NOT NULL,
    mode TEXT NOT NULL,
    status TEXT NOT NULL,
    params TEXT NOT NULL,
    targets TEXT NOT NULL,
    continue_on_error INTEGER NOT NULL,
    timeout REAL NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    expires REAL,
    outcome TEXT,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS actions_status ON actions (status);
CREATE INDEX IF NOT EXISTS actions_run ON actions (detection_id, playbook, step);
CREATE TABLE IF NOT EXISTS runs (action TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS runs_at ON runs (at);
"""


@dataclass(frozen=True)
class StoredAction:
    """One planned action as the state file holds it."""

    id: str
    detection_id: str
    rule_id: str
    playbook: str
    step: int
    action: str
    system: str
    mode: str
    status: str
    params: dict[str, Any]
    targets: list[Target]
    continue_on_error: bool
    timeout: float
    created: float
    updated: float
    expires: float | None
    outcome: dict[str, Any] | None
    reason: str


class StateStore:
    """Rows of planned actions and the times actions ran. `path=None`: in memory (replay)."""

    def __init__(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._db = sqlite3.connect(
            ":memory:" if path is None else str(path), timeout=10.0, isolation_level=None
        )
        self._db.row_factory = sqlite3.Row
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction taken up front, so a check and its write are one step."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def insert(self, row: StoredAction) -> bool:
        """Add `row`; False (and nothing changed) when its id is already there."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO actions VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.id,
                row.detection_id,
                row.rule_id,
                row.playbook,
                row.step,
                row.action,
                row.system,
                row.mode,
                row.status,
                orjson.dumps(row.params).decode(),
                orjson.dumps([t.model_dump() for t in row.targets]).decode(),
                int(row.continue_on_error),
                row.timeout,
                row.created,
                row.updated,
                row.expires,
                None if row.outcome is None else orjson.dumps(row.outcome).decode(),
                row.reason,
            ),
        )
        return cursor.rowcount == 1

    def get(self, action_id: str) -> StoredAction | None:
        found = self._db.execute("SELECT * FROM actions WHERE id = ?", (action_id,)).fetchone()
        return None if found is None else _stored(found)

    def find(self, prefix: str) -> list[StoredAction]:
        """Rows whose id starts with `prefix` (ids are long; people type the start)."""
        rows = self._db.execute(
            "SELECT * FROM actions WHERE substr(id, 1, ?) = ? LIMIT 2", (len(prefix), prefix)
        ).fetchall()
        return [_stored(row) for row in rows]

    def listing(self, status: str | None = None, limit: int = 1000) -> list[StoredAction]:
        if status is None:
            rows = self._db.execute(
                "SELECT * FROM actions ORDER BY created DESC, step LIMIT ?", (limit,)
            )
        else:
            rows = self._db.execute(
                "SELECT * FROM actions WHERE status = ? ORDER BY created DESC, step LIMIT ?",
                (status, limit),
            )
        return [_stored(row) for row in rows.fetchall()]

    def steps_of(self, detection_id: str, playbook: str) -> list[StoredAction]:
        rows = self._db.execute(
            "SELECT * FROM actions WHERE detection_id = ? AND playbook = ? ORDER BY step",
            (detection_id, playbook),
        )
        return [_stored(row) for row in rows.fetchall()]

    def expired(self, now: float) -> list[StoredAction]:
        rows = self._db.execute(
            "SELECT * FROM actions WHERE status = 'pending' AND expires <= ?", (now,)
        )
        return [_stored(row) for row in rows.fetchall()]

    def change(
        self,
        action_id: str,
        expected: str,
        status: str,
        now: float,
        *,
        reason: str | None = None,
        outcome: dict[str, Any] | None = None,
    ) -> bool:
        """Move a row from `expected` to `status`; False when it was not in `expected`."""
        cursor = self._db.execute(
            "UPDATE actions SET status = ?, updated = ?, reason = coalesce(?, reason), "
            "outcome = coalesce(?, outcome) WHERE id = ? AND status = ?",
            (
                status,
                now,
                reason,
                None if outcome is None else orjson.dumps(outcome).decode(),
                action_id,
                expected,
            ),
        )
        return cursor.rowcount == 1

    def record_run(self, action: str, now: float) -> None:
        self._db.execute("INSERT INTO runs VALUES (?, ?)", (action, now))

    def runs_since(self, since: float) -> tuple[int, dict[str, int]]:
        """(all runs, runs by action) at or after `since`; older ones are dropped."""
        self._db.execute("DELETE FROM runs WHERE at < ?", (since,))
        by_action = {
            row[0]: row[1]
            for row in self._db.execute("SELECT action, count(*) FROM runs GROUP BY action")
        }
        return sum(by_action.values()), by_action


def _stored(row: sqlite3.Row) -> StoredAction:
    return StoredAction(
        id=row["id"],
        detection_id=row["detection_id"],
        rule_id=row["rule_id"],
        playbook=row["playbook"],
        step=row["step"],
        action=row["action"],
        system=row["system"],
        mode=row["mode"],
        status=row["status"],
        params=orjson.loads(row["params"]),
        targets=[Target.model_validate(t) for t in orjson.loads(row["targets"])],
        continue_on_error=bool(row["continue_on_error"]),
        timeout=row["timeout"],
        created=row["created"],
        updated=row["updated"],
        expires=row["expires"],
        outcome=None if row["outcome"] is None else orjson.loads(row["outcome"]),
        reason=row["reason"],
    )
