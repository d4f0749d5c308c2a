"""Kubernetes actions run by the responder core: a lock that fails halfway keeps what undo
needs, and the waits the API server asks for are honoured within the step's timeout."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner

from detector.cli import main
from detector.respond.audit import AuditTrail
from detector.respond.playbooks import Playbook
from detector.respond.responder import Clock, Responder
from detector.respond.settings import RespondersSettings
from detector.respond.state import StateStore
from tests.respond.core.counting import RULE, detection
from tests.respond.kubernetes.kubernetes_server import KubernetesServer
from tests.respond.kubernetes.seed import RBAC, connection, same_object, seed_service_account

LOCK = {
    "action": "kubernetes.lock_service_account",
    "with": {"namespace": "ci", "name": "deployer"},
    "mode": "auto",
}
SCALE = {
    "action": "kubernetes.scale_to_zero",
    "with": {"namespace": "ci", "name": "web"},
    "mode": "auto",
    "timeout": 60,
}
BINDINGS = (
    f"{RBAC}/namespaces/ci/rolebindings/deployer-edit",  # deleted first
    f"{RBAC}/namespaces/ci/rolebindings/shared",  # the subject removed second
    f"{RBAC}/namespaces/prod/rolebindings/deployer-by-name",  # the third: a conflict
    f"{RBAC}/clusterrolebindings/deployer-view",
)


class Sleeps:
    """The clock's sleeps, recorded instead of waited."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def responder(
    tmp: Path, cluster: KubernetesServer, step: dict[str, Any], sleeps: Sleeps
) -> Responder:
    settings = RespondersSettings(
        state=tmp / "state.sqlite3",
        audit=tmp / "actions.jsonl",
        systems={"kubernetes": connection(cluster)},
    )
    playbook = Playbook.model_validate(
        {"name": "contain", "match": {"rules": [RULE.id]}, "actions": [step]}
    )
    return Responder(
        settings,
        [playbook],
        store=StateStore(settings.state),
        audit=AuditTrail(settings.audit),
        clock=Clock(sleep=sleeps),
    )


def audit(tmp: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (tmp / "actions.jsonl").read_bytes().splitlines()]


async def test_a_lock_failing_halfway_is_recorded_and_undo_restores_its_part(
    tmp_path: Path, cluster: KubernetesServer
) -> None:
    before = seed_service_account(cluster)
    cluster.fail_on[("DELETE", BINDINGS[2])] = 409
    sleeps = Sleeps()
    core = responder(tmp_path, cluster, LOCK, sleeps)

    running, failed = await core.handle(detection(1))

    assert (running.status, failed.status, failed.outcome) == ("running", "failed", "partial")
    assert "HTTP 409" in failed.reason and sleeps.waits == []  # a conflict is not retried
    assert BINDINGS[0] not in cluster.objects
    assert [s["name"] for s in cluster.objects[BINDINGS[1]]["subjects"]] == ["alice"]
    assert failed.undo_state is not None
    kept = failed.undo_state["bindings"]
    assert isinstance(kept, list)
    assert [entry["object"]["metadata"]["name"] for entry in kept] == ["deployer-edit", "shared"]  # type: ignore[call-overload,index]
    assert audit(tmp_path)[-1]["undo_state"] == failed.undo_state
    core.close()
    config = tmp_path / "detector.yml"
    config.write_text(yaml.safe_dump({"responders": core.settings.model_dump(mode="json")}))

    undone = await asyncio.to_thread(
        CliRunner().invoke,
        main,
        ["actions", "undo", failed.id[:10], "--config", str(config), "--as", "alice"],
    )

    assert undone.exit_code == 0, undone.output
    assert f"{failed.id[:12]} undone kubernetes.lock_service_account by alice" in undone.output
    for path in BINDINGS:
        assert same_object(before[path], cluster.get(path)), path
    account = cluster.get("/api/v1/namespaces/ci/serviceaccounts/deployer")
    assert account is not None and "automountServiceAccountToken" not in account
    assert audit(tmp_path)[-1]["status"] == "undone"


async def test_a_retried_lock_keeps_the_backups_of_the_failed_attempt(
    tmp_path: Path, cluster: KubernetesServer
) -> None:
    before = seed_service_account(cluster)
    cluster.fail_on[("DELETE", BINDINGS[2])] = 503  # retryable: the second attempt goes on
    core = responder(tmp_path, cluster, LOCK, Sleeps())

    _, executed = await core.handle(detection(1))

    assert (executed.status, executed.outcome) == ("executed", "done")
    assert all(path not in cluster.objects for path in (BINDINGS[0], BINDINGS[2], BINDINGS[3]))
    await core.undo(executed.id, "alice")
    for path in BINDINGS:  # the first attempt's deletions are restored too
        assert same_object(before[path], cluster.get(path)), path
    core.close()


def seed_deployment(cluster: KubernetesServer) -> str:
    path = "/apis/apps/v1/namespaces/ci/deployments/web"
    cluster.put(path, {"metadata": {"name": "web", "namespace": "ci"}, "spec": {"replicas": 3}})
    return path


async def test_the_wait_the_api_server_asks_for_is_honoured(
    tmp_path: Path, cluster: KubernetesServer
) -> None:
    path = seed_deployment(cluster)
    cluster.fail_next = [(429, {"Retry-After": "7"})]
    sleeps = Sleeps()
    core = responder(tmp_path, cluster, SCALE, sleeps)

    _, executed = await core.handle(detection(1))

    assert executed.status == "executed"
    assert sleeps.waits[0] == 7  # not the first backoff delay of 0.5s
    assert cluster.objects[path]["spec"]["replicas"] == 0
    core.close()


@pytest.mark.parametrize("wait", ["60", "3600"])
async def test_a_wait_past_the_step_timeout_fails_the_step_now(
    tmp_path: Path, cluster: KubernetesServer, wait: str
) -> None:
    path = seed_deployment(cluster)
    cluster.fail_next = [(429, {"Retry-After": wait})]
    sleeps = Sleeps()
    core = responder(tmp_path, cluster, SCALE, sleeps)

    _, failed = await core.handle(detection(1))

    assert failed.status == "failed" and failed.outcome is None
    assert f"({wait}s) ends past the step's timeout" in failed.reason
    assert sleeps.waits == []
    assert cluster.objects[path]["spec"]["replicas"] == 3
    core.close()


async def test_a_scale_down_that_never_shows_keeps_the_count_for_undo(
    tmp_path: Path, cluster: KubernetesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = seed_deployment(cluster)
    stored = cluster.put

    def self_heal(item: str, obj: dict[str, Any]) -> dict[str, Any]:
        """A GitOps controller puts the replicas back as soon as they change."""
        if item == path:
            obj["spec"]["replicas"] = 3
        return stored(item, obj)

    monkeypatch.setattr(cluster, "put", self_heal)
    core = responder(tmp_path, cluster, {**SCALE, "timeout": 1}, Sleeps())

    _, failed = await core.handle(detection(1))

    assert (failed.status, failed.outcome) == ("failed", "partial")
    assert failed.reason == "no result within 1s"
    assert failed.undo_state == {"replicas": 3}
    undone = await core.undo(failed.id, "alice")
    assert undone.status == "undone"
    assert cluster.objects[path]["spec"]["replicas"] == 3
    core.close()
