"""The responder's safety rules, against a real HTTP server that counts every call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.respond.actions.base import SystemConnection
from detector.respond.audit import AuditTrail
from detector.respond.playbooks import Playbook
from detector.respond.responder import Clock, Responder, ResponderError
from detector.respond.settings import ProtectedTarget, RateLimit, RespondersSettings
from detector.respond.state import StateStore
from tests.respond.core.counting import FakeSystem, detection, serving


async def _no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


class World:
    """The fake system's server, and responders over one state directory."""

    def __init__(self, tmp: Path, url: str, system: FakeSystem) -> None:
        self.tmp = tmp
        self.url = url
        self.system = system
        self.time = 1_000_000.0

    def settings(self, **overrides: Any) -> RespondersSettings:
        values: dict[str, Any] = {
            "state": self.tmp / "state.sqlite3",
            "audit": self.tmp / "actions.jsonl",
            "systems": {"test": SystemConnection(url=self.url)},
        }
        values.update(overrides)
        return RespondersSettings(**values)

    def responder(self, *steps: dict[str, Any], dry: bool = False, **overrides: Any) -> Responder:
        playbook = Playbook.model_validate(
            {
                "name": "contain",
                "match": {"rules": ["b3aa8717-eaf3-4b5d-945c-1fb9c018d169"]},
                "actions": list(steps),
            }
        )
        settings = self.settings(**overrides)
        return Responder(
            settings,
            [playbook],
            store=StateStore(None if dry else settings.state),
            audit=AuditTrail(settings.audit),
            dry=dry,
            clock=Clock(now=lambda: self.time, sleep=_no_wait),
        )

    def audit(self) -> list[dict[str, Any]]:
        path = self.tmp / "actions.jsonl"
        return [orjson.loads(line) for line in path.read_bytes().splitlines()]


BLOCK_AUTO = {"action": "test.block", "with": {"user": "{{ actor }}"}, "mode": "auto"}
BLOCK_APPROVE = {"action": "test.block", "with": {"user": "{{ actor }}"}, "mode": "approve"}


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    system = FakeSystem()
    async with serving(system) as url:
        yield World(tmp_path, url, system)


async def test_auto_action_runs_once_however_often_the_detection_comes(world: World) -> None:
    responder = world.responder(BLOCK_AUTO)
    first = await responder.handle(detection(1))
    again = await responder.handle(detection(1))
    assert [r.status for r in first] == ["running", "executed"]
    assert again == []
    assert world.system.calls["block"] == 1
    assert world.system.blocked == {"mallory"}
    assert [r["status"] for r in world.audit()] == ["running", "executed"]
    assert world.audit()[1]["outcome"] == "done"


async def test_a_restart_between_plan_and_approval_runs_the_action_once(world: World) -> None:
    before = world.responder(BLOCK_APPROVE)
    [pending] = await before.handle(detection(1))
    assert pending.status == "pending"
    assert world.system.changes == 0
    before.close()

    after = world.responder(BLOCK_APPROVE)  # a new process over the same state file
    assert await after.handle(detection(1)) == []  # redelivered after the restart
    records = await after.approve(pending.id[:12], "alice")
    assert [r.status for r in records] == ["approved", "running", "executed"]
    assert records[0].actor == "alice"
    with pytest.raises(ResponderError, match="executed, not pending"):
        await after.approve(pending.id, "bob")
    assert await after.handle(detection(1)) == []
    assert world.system.calls["block"] == 1


async def test_a_protected_identity_is_refused_without_any_call(world: World) -> None:
    responder = world.responder(
        BLOCK_AUTO, protected=[ProtectedTarget(system="test", name="break-glass-*")]
    )
    [record] = await responder.handle(detection(1, actor="break-glass-admin"))
    assert record.status == "refused"
    assert "protected" in record.reason
    assert world.system.calls.total() == 0


async def test_the_engines_own_identity_is_never_acted_on(world: World) -> None:
    responder = world.responder(
        BLOCK_AUTO, own_identities=[ProtectedTarget(system="*", name="detector")]
    )
    [record] = await responder.handle(detection(1, actor="detector"))
    assert record.status == "refused"
    assert world.system.calls.total() == 0


async def test_actions_past_the_rate_cap_wait_for_approval(world: World) -> None:
    responder = world.responder(BLOCK_AUTO, rate_limit=RateLimit(total=10, default=2))
    statuses = []
    for n in range(4):
        records = await responder.handle(detection(n, actor=f"user{n}"))
        statuses.append(records[-1].status)
    assert statuses == ["executed", "executed", "pending", "pending"]
    assert world.system.calls["block"] == 2
    world.time += 3601  # the window has moved on
    records = await responder.handle(detection(9, actor="user9"))
    assert records[-1].status == "executed"


async def test_pending_approvals_expire(world: World) -> None:
    responder = world.responder(BLOCK_APPROVE, approval_ttl_seconds=60)
    [pending] = await responder.handle(detection(1))
    assert pending.expires_at is not None
    world.time += 61
    [expired] = responder.expire()
    assert (expired.id, expired.status) == (pending.id, "expired")
    with pytest.raises(ResponderError, match="expired"):
        await responder.approve(pending.id, "alice")
    assert world.system.changes == 0


async def test_a_rejection_also_rejects_the_steps_after_it(world: World) -> None:
    responder = world.responder(BLOCK_APPROVE, BLOCK_AUTO)
    first, second = await responder.handle(detection(1))
    assert (first.status, second.status) == ("pending", "pending")
    with pytest.raises(ResponderError, match="comes first"):
        await responder.approve(second.id, "alice")
    rejected = responder.reject(first.id, "alice", "false positive")
    assert [r.status for r in rejected] == ["rejected", "rejected"]
    assert world.system.changes == 0


async def test_a_replay_plans_and_never_calls(world: World) -> None:
    responder = world.responder(
        BLOCK_AUTO,
        BLOCK_APPROVE,
        {"action": "test.wipe", "with": {"user": "{{ actor }}"}},
        dry=True,
    )
    records = await responder.handle(detection(1))
    assert [(r.status, r.would_run) for r in records] == [
        ("planned", "auto"),
        ("planned", "approve"),
        ("planned", "approve"),  # irreversible: approve when no mode is written
    ]
    with pytest.raises(ResponderError):
        await responder.approve(records[1].id, "alice")
    assert world.system.calls.total() == 0


@pytest.mark.parametrize(
    "template",
    [
        "{{ actor.__class__ }}",
        "{{ actor.__class__.__mro__[1].__subclasses__() }}",
        "{{ detection.items.__globals__ }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ '{0.__class__.__mro__}'.format(actor) }}",
        "{{ nothing_like_this }}",
    ],
)
async def test_templates_cannot_reach_python_internals(world: World, template: str) -> None:
    step = {"action": "test.block", "with": {"user": template}, "mode": "auto"}
    [record] = await world.responder(step).handle(detection(1))
    assert record.status == "failed"
    assert record.reason.startswith("parameters:")
    assert world.system.calls.total() == 0


async def test_retryable_errors_are_retried_and_the_effect_verified(world: World) -> None:
    world.system.failures_before_success = 2
    world.system.reads_before_visible = 3
    records = await world.responder(BLOCK_AUTO).handle(detection(1))
    assert records[-1].status == "executed"
    assert world.system.calls["block"] == 3
    assert world.system.calls["read"] == 4


async def test_an_effect_never_seen_is_a_failure(world: World) -> None:
    world.system.reads_before_visible = 10**9
    step = {**BLOCK_AUTO, "timeout": 0.3}
    responder = world.responder(step)
    responder.clock = Clock(now=lambda: world.time)  # real sleeps, so the timeout comes
    records = await responder.handle(detection(1))
    assert records[-1].status == "failed"
    assert "no result within" in records[-1].reason


async def test_undo_reverses_an_executed_action(world: World) -> None:
    responder = world.responder(BLOCK_AUTO)
    executed = (await responder.handle(detection(1)))[-1]
    undone = await responder.undo(executed.id, "alice")
    assert (undone.status, undone.actor) == ("undone", "alice")
    assert world.system.blocked == set()
    with pytest.raises(ResponderError, match="undone, not executed"):
        await responder.undo(executed.id, "alice")


async def test_an_irreversible_action_cannot_be_undone(world: World) -> None:
    step = {"action": "test.wipe", "with": {"user": "{{ actor }}"}}
    responder = world.responder(step)
    [pending] = await responder.handle(detection(1))
    assert (pending.status, pending.mode) == ("pending", "approve")
    executed = (await responder.approve(pending.id, "alice"))[-1]
    assert executed.status == "executed"
    with pytest.raises(ResponderError, match="cannot be undone"):
        await responder.undo(executed.id, "alice")


async def test_secrets_in_parameters_are_redacted_in_the_trail(world: World) -> None:
    token = "ghp_" + "a" * 36
    step = {"action": "test.block", "with": {"user": token}, "mode": "dry_run"}
    await world.responder(step).handle(detection(1))
    assert token not in (world.tmp / "actions.jsonl").read_text()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    deliveries=st.lists(st.integers(min_value=0, max_value=7), min_size=1, max_size=20),
    cap=st.integers(min_value=0, max_value=5),
    total=st.integers(min_value=0, max_value=5),
)
def test_each_action_runs_at_most_once_and_never_past_the_cap(
    tmp_path_factory: pytest.TempPathFactory, deliveries: list[int], cap: int, total: int
) -> None:
    tmp = tmp_path_factory.mktemp("property")

    async def scenario() -> None:
        system = FakeSystem()
        async with serving(system) as url:
            world = World(tmp, url, system)
            responder = world.responder(BLOCK_AUTO, rate_limit=RateLimit(total=total, default=cap))
            for n in deliveries:
                await responder.handle(detection(n, actor=f"user{n}"))
                responder.close()  # a restart between any two deliveries
                responder = world.responder(
                    BLOCK_AUTO, rate_limit=RateLimit(total=total, default=cap)
                )
            distinct = len(set(deliveries))
            assert system.calls["block"] == min(distinct, cap, total)
            statuses = [r.status for r in responder.store.listing()]
            assert len(statuses) == distinct
            assert statuses.count("executed") == system.calls["block"]
            assert statuses.count("pending") == distinct - system.calls["block"]
            responder.close()

    asyncio.run(scenario())


async def test_an_approval_releases_the_auto_steps_that_waited_for_it(world: World) -> None:
    responder = world.responder(BLOCK_APPROVE, {**BLOCK_AUTO, "with": {"user": "second"}})
    first, second = await responder.handle(detection(1))
    assert (first.status, second.status) == ("pending", "pending")
    records = await responder.approve(first.id, "alice")
    assert [(r.step, r.status) for r in records] == [
        (0, "approved"),
        (0, "running"),
        (0, "executed"),
        (1, "running"),
        (1, "executed"),
    ]
    assert world.system.blocked == {"mallory", "second"}
