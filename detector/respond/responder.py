"""The responder: detections in, actions out, under one set of safety rules.

For each detection, every matching playbook's steps are taken in order. A step is
rendered from the detection, checked against the protected targets, and then, by
mode: `dry_run` → `planned`; `approve` → `pending` until a person decides or it
expires; `auto` → run, unless the rate cap is reached, which makes it `pending` too.
A step waiting for a person holds the steps after it (they are `pending` as well and
can only be approved in order; held `auto` steps run once the approved step before them
has); a failed or refused step stops the playbook unless it says `continue_on_error`.

Each step is keyed by (detection id, playbook, step) in the state file before anything
runs, so a redelivered detection or a restart never repeats an action. A crash while
a call is in flight leaves the step `running`: it is never retried on its own, a person
looks (`detector actions list`).

A dry responder (replay) runs nothing, ever: every step is `planned`, with the mode it
would have run in.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, JsonValue, ValidationError

from detector.detections import Detection
from detector.events import Event
from detector.respond.actions.base import (
    Action,
    ActionError,
    ActionOutcome,
    SystemConnection,
    Target,
    merge_undo_state,
    registered,
)
from detector.respond.audit import (
    ENGINE,
    ActionRecord,
    AuditTrail,
    Status,
    redacted_parameters,
    redacted_reason,
    utc,
)
from detector.respond.playbooks import Mode, Playbook, Step
from detector.respond.settings import RespondersSettings
from detector.respond.state import StateStore, StoredAction
from detector.respond.templates import TemplateError, render_params

log = logging.getLogger("detector.respond")

#: retryable errors: first delay, doubled up to the cap, all within the step's timeout
RETRY_BASE = 0.5
RETRY_CAP = 10.0
#: re-reads of the target after a call: first delay, doubled up to the cap
VERIFY_BASE = 0.1
VERIFY_CAP = 5.0
#: statuses after which the next step of a playbook may run
_SETTLED = frozenset({"planned", "executed", "undone"})
#: the reason of a step pending only because an earlier step is
HELD = "waits for an earlier step"


class ResponderError(Exception):
    """A request about an action that cannot be honoured (wrong state, ambiguous id)."""


class UnknownActionError(ResponderError):
    """No action has this id."""


def action_id(detection_id: str, playbook: str, step: int) -> str:
    """The idempotency key of one step of one playbook for one detection."""
    joined = "\x1f".join((detection_id, playbook, str(step)))
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:32]


def template_context(detection: Detection, event: Event | None) -> dict[str, Any]:
    """What templates and `match.fields` see: plain JSON data only.

    `event` is the normalized event of the detection's last evidence (`recent.py`), used
    only when it is that one.
    """
    data = detection.model_dump(mode="json", by_alias=True, exclude_none=True)
    evidence = detection.evidence
    own = event is not None and bool(evidence) and evidence[-1].id == event.event_id
    actors = [e.actor for e in evidence if e.actor]
    return {
        "detection": data,
        "rule": data["rule"],
        "group": data.get("group", {}),
        "actor": actors[-1] if actors else None,
        "event": event.model_dump(mode="json", by_alias=True, exclude_none=True)
        if own and event is not None
        else {},
    }


@dataclass
class Clock:
    """Wall time (records, expiry, the rate window) and the sleeps between attempts."""

    now: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


@dataclass
class _Planned:
    """One step ready to be stored: rendered, its targets known, or why it cannot run."""

    step: Step
    action: type[Action[Any]] | None
    mode: Mode
    params: dict[str, Any]
    targets: list[Target] = field(default_factory=list)
    problem: str = ""
    protected: str = ""


class Responder:
    """Matches playbooks, plans their steps and runs them within the safety rules."""

    def __init__(
        self,
        settings: RespondersSettings,
        playbooks: list[Playbook],
        *,
        store: StateStore,
        audit: AuditTrail,
        dry: bool = False,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.playbooks = playbooks
        self.store = store
        self.audit = audit
        self.dry = dry
        self.clock = clock or Clock()

    def close(self) -> None:
        self.store.close()
        self.audit.close()

    # -- planning --------------------------------------------------------------------

    async def handle(self, detection: Detection, event: Event | None = None) -> list[ActionRecord]:
        """Plan and run the steps of every playbook `detection` matches; the records made."""
        self.expire()
        context = template_context(detection, event)
        records: list[ActionRecord] = []
        for playbook in self.playbooks:
            if playbook.match.matches(detection, context):
                records.extend(await self._play(playbook, detection, context))
        return records

    async def _play(
        self, playbook: Playbook, detection: Detection, context: Mapping[str, Any]
    ) -> list[ActionRecord]:
        records: list[ActionRecord] = []
        held = False  # an earlier step waits for a person
        for index, step in enumerate(playbook.actions):
            key = action_id(detection.id, playbook.name, index)
            stored = self.store.get(key)
            if stored is None:
                planned = self._plan(step, context)
                stored, record = self._store(key, detection, playbook.name, index, planned, held)
                if isinstance(record, ActionRecord):
                    records.append(record)
                elif record == "run":
                    records.extend(await self._execute(stored, ENGINE))
                    stored = self.store.get(key) or stored
            if stored.status in ("pending", "approved", "running"):
                held = True
            elif stored.status not in _SETTLED and not stored.continue_on_error:
                break
        return records

    def _plan(self, step: Step, context: Mapping[str, Any]) -> _Planned:
        action = registered().get(step.action)
        if action is None:
            return _Planned(step, None, step.mode or "dry_run", {}, problem="unknown action")
        mode = step.effective_mode(action)
        try:
            rendered = render_params(step.with_, context)
        except TemplateError as exc:
            return _Planned(step, action, mode, {}, problem=f"parameters: {exc}")
        try:
            params = action.params_model.model_validate(rendered)
        except ValidationError as exc:
            problem = f"parameters: {_first_error(exc)}"
            return _Planned(step, action, mode, rendered, problem=problem)
        try:
            targets = action(self._connection(action, required=False)).targets(params)
        except Exception as exc:  # an action's bug: without its targets, nothing may run
            log.exception("targets of %s failed", step.action)
            problem = f"targets: {type(exc).__name__}: {exc}"
            return _Planned(step, action, mode, rendered, problem=problem)
        for target in targets:
            entry = self.settings.protection_of(target)
            if entry is not None:
                reason = f"{target.system} {target.name} is protected ({entry.system}:{entry.name})"
                return _Planned(step, action, mode, rendered, targets, protected=reason)
        # stored as rendered: a dump would mask secret parameters (a credential to revoke)
        return _Planned(step, action, mode, rendered, targets)

    def _store(
        self,
        key: str,
        detection: Detection,
        playbook: str,
        index: int,
        planned: _Planned,
        held: bool,
    ) -> tuple[StoredAction, ActionRecord | Literal["run", "taken"]]:
        """Decide the step's first status and store it with its record, in one transaction
        (the rate window is read and taken in the same one). Instead of a record: "run" for
        a step to run now (`_execute` writes its records), "taken" when another process
        stored the step first."""
        now = self.clock.now()
        status: Status
        reason = planned.problem or planned.protected
        expires = None
        with self.store.transaction():
            if planned.problem:
                status = "failed"
            elif planned.protected:
                status = "refused"
            elif self.dry or planned.mode == "dry_run":
                status = "planned"
            elif held:
                status, reason = "pending", HELD
            elif planned.mode == "approve":
                status = "pending"
            else:
                capped = self._capped(planned.step.action, now)
                status, reason = ("pending", capped) if capped else ("running", "")
            if status == "pending":
                expires = now + self.settings.approval_ttl_seconds
            stored = StoredAction(
                id=key,
                detection_id=detection.id,
                rule_id=detection.rule.id,
                playbook=playbook,
                step=index,
                action=planned.step.action,
                system=planned.action.system if planned.action else "",
                mode=planned.mode,
                status=status,
                params=planned.params,
                targets=planned.targets,
                continue_on_error=planned.step.continue_on_error,
                timeout=planned.step.timeout,
                created=now,
                updated=now,
                expires=expires,
                outcome=None,
                reason=reason,
            )
            if not self.store.insert(stored):
                return self.store.get(key) or stored, "taken"
            if status == "running":
                self.store.record_run(planned.step.action, now)
                return stored, "run"
            record = self._record(stored, status, ENGINE, now)
            self.audit.write(record)
        return stored, record

    def _capped(self, action: str, now: float) -> str:
        """Why running `action` now would pass the rate cap; empty when it would not."""
        limit = self.settings.rate_limit
        total, by_action = self.store.runs_since(now - limit.window_seconds)
        if total >= limit.total:
            return f"rate cap: {total} actions in {limit.window_seconds:g}s"
        ran = by_action.get(action, 0)
        if ran >= limit.cap_of(action):
            return f"rate cap: {ran} {action} in {limit.window_seconds:g}s"
        return ""

    # -- running ---------------------------------------------------------------------

    async def _execute(self, stored: StoredAction, actor: str) -> list[ActionRecord]:
        """Run a `running` step: execute (retrying what is retryable), then re-read the
        target until the effect shows, all within the step's timeout. The records: before
        the call, and its result."""
        if self.dry:  # unreachable by construction; a replay must never call anything
            raise ResponderError("a dry responder runs nothing")
        started = self._record(stored, "running", actor, self.clock.now())
        self.audit.write(started)
        return [started, await self._call(stored, actor)]

    async def _call(self, stored: StoredAction, actor: str) -> ActionRecord:
        # What attempts that failed halfway changed: kept with the failure for `undo`.
        partial: dict[str, JsonValue] = {}
        try:
            action_cls = registered()[stored.action]
            action = action_cls(self._connection(action_cls, required=True))
            params = action_cls.params_model.model_validate(stored.params)
            async with asyncio.timeout(stored.timeout) as scope:
                outcome = await self._with_retries(lambda: action.execute(params), scope, partial)
                if outcome.state == "done":  # a failed check must not lose what undo needs
                    partial.clear()
                    partial.update(outcome.undo_state)
                await self._verified(action, params, scope)
        except TimeoutError:
            reason = f"no result within {stored.timeout:g}s"
            return self._finish(stored, "failed", actor, reason, _partly_done(partial))
        except ActionError as exc:
            return self._finish(stored, "failed", actor, _describe(exc), _partly_done(partial))
        except (KeyError, ResponderError) as exc:  # the action or its system is gone
            return self._finish(stored, "failed", actor, str(exc))
        except Exception as exc:  # an action's bug must not stop the responder
            log.exception("action %s failed unexpectedly", stored.action)
            return self._finish(stored, "failed", actor, f"{type(exc).__name__}: {exc}")
        return self._finish(stored, "executed", actor, outcome.detail, outcome)

    async def _with_retries(
        self,
        call: Callable[[], Awaitable[ActionOutcome]],
        scope: asyncio.Timeout,
        partial: dict[str, JsonValue] | None = None,
    ) -> ActionOutcome:
        """Call until it succeeds or fails for good, waiting between retryable errors: the
        backoff delay, or longer when the system names its wait (`retry_after`). A wait that
        would end past the step's timeout fails the step now instead. `partial` collects the
        `undo_state` of attempts that failed halfway; a later success carries it on."""
        delay = RETRY_BASE
        while True:
            try:
                outcome = await call()
            except ActionError as exc:
                if exc.undo_state and partial is not None:
                    partial.update(merge_undo_state(partial, exc.undo_state))
                if not exc.retryable:
                    raise
                wait = _retry_wait(exc, delay, scope)
            else:
                if not partial:
                    return outcome
                state = "done" if outcome.state == "already_done" else outcome.state
                merged = merge_undo_state(partial, outcome.undo_state)
                return outcome.model_copy(update={"state": state, "undo_state": merged})
            await self.clock.sleep(wait)
            delay = min(delay * 2, RETRY_CAP)

    async def _verified(
        self, action: Action[Any], params: BaseModel, scope: asyncio.Timeout
    ) -> None:
        """Re-read the target until the effect shows, with the same waits as `_with_retries`."""
        delay = VERIFY_BASE
        while True:
            wait = delay
            try:
                if await action.verify(params):
                    return
            except ActionError as exc:
                if not exc.retryable:
                    raise
                wait = _retry_wait(exc, delay, scope)
            await self.clock.sleep(wait)
            delay = min(delay * 2, VERIFY_CAP)

    def _finish(
        self,
        stored: StoredAction,
        status: Status,
        actor: str,
        reason: str,
        outcome: ActionOutcome | None = None,
    ) -> ActionRecord:
        now = self.clock.now()
        dumped = outcome.model_dump(mode="json") if outcome is not None else None
        self.store.change(stored.id, "running", status, now, reason=reason, outcome=dumped)
        record = self._record(stored, status, actor, now, reason=reason, outcome=outcome)
        self.audit.write(record)
        return record

    def _connection(self, action: type[Action[Any]], *, required: bool) -> SystemConnection:
        """The system's connection; a placeholder where nothing is called (planning)."""
        connection = self.settings.systems.get(action.system)
        if connection is None:
            if required:
                raise ResponderError(f"no connection configured for {action.system}")
            connection = SystemConnection(url="unconfigured:")
        return connection

    # -- decisions -------------------------------------------------------------------

    def resolve(self, prefix: str) -> StoredAction:
        """The action whose id is or starts with `prefix` (at least 8 characters)."""
        if len(prefix) < 8:
            raise ResponderError("give at least 8 characters of the action id")
        found = self.store.find(prefix)
        if not found:
            raise UnknownActionError(f"no action {prefix}")
        if len(found) > 1:
            raise ResponderError(f"{prefix} names more than one action: give more of the id")
        return found[0]

    async def approve(self, prefix: str, approver: str) -> list[ActionRecord]:
        """Run a pending action now, as `approver` decided. Earlier steps of its playbook
        must be settled first; the rate cap does not apply to a person's decision."""
        self._refuse_dry()
        self.expire()
        stored = self.resolve(prefix)
        if stored.status != "pending":
            raise ResponderError(f"action {stored.id} is {stored.status}, not pending")
        for earlier in self.store.steps_of(stored.detection_id, stored.playbook):
            if earlier.step >= stored.step:
                break
            if earlier.status not in _SETTLED and not (
                earlier.continue_on_error and earlier.status in ("failed", "refused")
            ):
                raise ResponderError(
                    f"step {earlier.step} ({earlier.action}) of {stored.playbook} is "
                    f"{earlier.status}: it comes first"
                )
        now = self.clock.now()
        with self.store.transaction():
            if not self.store.change(stored.id, "pending", "running", now):
                raise ResponderError(f"action {stored.id} was decided meanwhile")
            self.store.record_run(stored.action, now)
            approved = self._record(stored, "approved", approver, now)
            self.audit.write(approved)
        records = [approved, *await self._execute(stored, approver)]
        return records + await self._release(stored)

    async def _release(self, decided: StoredAction) -> list[ActionRecord]:
        """Once an approved step has run, run the `auto` steps after it that only waited
        for it, in order, within the rate cap; stop at a step that needs its own approval."""
        records: list[ActionRecord] = []
        previous = self.store.get(decided.id)
        for row in self.store.steps_of(decided.detection_id, decided.playbook):
            if row.step <= decided.step:
                continue
            if previous is None or not (
                previous.status in _SETTLED
                or (previous.continue_on_error and previous.status == "failed")
            ):
                break
            if (row.status, row.mode, row.reason) != ("pending", "auto", HELD):
                break
            now = self.clock.now()
            with self.store.transaction():
                capped = self._capped(row.action, now)
                if capped or not self.store.change(row.id, "pending", "running", now):
                    if capped:
                        self.store.change(row.id, "pending", "pending", now, reason=capped)
                    break
                self.store.record_run(row.action, now)
            records.extend(await self._execute(row, ENGINE))
            previous = self.store.get(row.id)
        return records

    def reject(self, prefix: str, approver: str, reason: str = "") -> list[ActionRecord]:
        """Reject a pending action and the pending steps after it in its playbook."""
        self._refuse_dry()
        stored = self.resolve(prefix)
        if stored.status != "pending":
            raise ResponderError(f"action {stored.id} is {stored.status}, not pending")
        records = []
        now = self.clock.now()
        for row in self.store.steps_of(stored.detection_id, stored.playbook):
            if row.step < stored.step:
                continue
            why = reason if row.id == stored.id else f"step {stored.step} was rejected"
            if self.store.change(row.id, "pending", "rejected", now, reason=why):
                record = self._record(row, "rejected", approver, now, reason=why)
                self.audit.write(record)
                records.append(record)
        return records

    def expire(self) -> list[ActionRecord]:
        """Deny every pending approval past its time (an approval nobody gave is a no)."""
        now = self.clock.now()
        records = []
        for row in self.store.expired(now):
            if self.store.change(row.id, "pending", "expired", now, reason="nobody decided"):
                record = self._record(row, "expired", ENGINE, now, reason="nobody decided")
                self.audit.write(record)
                records.append(record)
        return records

    async def undo(self, prefix: str, actor: str) -> ActionRecord:
        """Reverse an executed action, or the part a failed one did, with what its outcome
        kept (`undo_state`)."""
        self._refuse_dry()
        stored = self.resolve(prefix)
        partly = stored.status == "failed" and (stored.outcome or {}).get("state") == "partial"
        if not (stored.status == "executed" or partly) or stored.outcome is None:
            raise ResponderError(f"action {stored.id} is {stored.status}, not executed")
        action_cls = registered().get(stored.action)
        if action_cls is None:
            raise ResponderError(f"unknown action {stored.action}")
        if not action_cls.reversible:
            raise ResponderError(f"{stored.action} cannot be undone")
        action = action_cls(self._connection(action_cls, required=True))
        params = action_cls.params_model.model_validate(stored.params)
        outcome = ActionOutcome.model_validate(stored.outcome)
        try:
            async with asyncio.timeout(stored.timeout) as scope:
                undone = await self._with_retries(lambda: action.undo(params, outcome), scope)
        except TimeoutError:
            raise ResponderError(f"undo gave no result within {stored.timeout:g}s") from None
        except ActionError as exc:
            raise ResponderError(f"undo failed: {_describe(exc)}") from None
        now = self.clock.now()
        if not self.store.change(stored.id, stored.status, "undone", now, reason=undone.detail):
            raise ResponderError(f"action {stored.id} changed meanwhile")
        record = self._record(stored, "undone", actor, now, reason=undone.detail)
        self.audit.write(record)
        return record

    def _refuse_dry(self) -> None:
        if self.dry:
            raise ResponderError("a dry responder runs nothing")

    # -- records ---------------------------------------------------------------------

    def _record(
        self,
        stored: StoredAction,
        status: Status,
        actor: str,
        now: float,
        *,
        reason: str | None = None,
        outcome: ActionOutcome | None = None,
    ) -> ActionRecord:
        return ActionRecord.model_validate(
            {
                "id": stored.id,
                "status": status,
                "time": utc(now),
                "detection_id": stored.detection_id,
                "rule_id": stored.rule_id,
                "playbook": stored.playbook,
                "step": stored.step,
                "action": stored.action,
                "system": stored.system,
                "mode": stored.mode,
                "would_run": stored.mode if self.dry and status == "planned" else None,
                "parameters": _shown_parameters(stored),
                "targets": stored.targets,
                "actor": actor,
                "reason": redacted_reason(stored.reason if reason is None else reason),
                "expires_at": utc(stored.expires)
                if stored.expires is not None and status == "pending"
                else None,
                "outcome": outcome.state if outcome is not None else None,
                # what a failure left changed, for a person reading the trail and for undo
                "undo_state": outcome.undo_state
                if outcome is not None and outcome.state == "partial"
                else None,
            }
        )


def _shown_parameters(stored: StoredAction) -> dict[str, JsonValue]:
    """The parameters as the audit trail shows them: as the action's model dumps them
    (secret fields masked), then redacted."""
    action = registered().get(stored.action)
    shown: dict[str, Any] = stored.params
    if action is not None:
        with contextlib.suppress(ValidationError):
            shown = action.params_model.model_validate(stored.params).model_dump(mode="json")
    return redacted_parameters(shown)


def _retry_wait(exc: ActionError, delay: float, scope: asyncio.Timeout) -> float:
    """How long to wait before trying again after a retryable `exc`: the backoff `delay`,
    or the longer wait the system named; an ActionError when that wait would end past the
    step's timeout, so the step fails now instead of sleeping into it."""
    wait = max(delay, exc.retry_after or 0.0)
    deadline = scope.when()
    late = deadline is not None and wait >= deadline - asyncio.get_running_loop().time()
    if exc.retry_after is not None and late:
        raise ActionError(
            f"{exc}; the wait it asks for ({wait:g}s) ends past the step's timeout",
            status=exc.status,
        ) from None
    log.info("retryable error, again in %.1fs: %s", wait, redacted_reason(str(exc)))
    return wait


def _partly_done(partial: dict[str, JsonValue]) -> ActionOutcome | None:
    """The outcome kept with a failure that changed something first (a call that failed
    halfway, or one whose effect never showed), so undo can reverse what it changed."""
    if not partial:
        return None
    detail = "failed after changing the target: undo reverses what was changed"
    return ActionOutcome(state="partial", detail=detail, undo_state=partial)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def _describe(exc: ActionError) -> str:
    status = f" (HTTP {exc.status})" if exc.status is not None else ""
    return redacted_reason(f"{exc}{status}")
