"""One identity across GitHub, GitHub Actions, a registry and Kubernetes: a supply-chain
path (branch protection removed → deploy job → image pushed → deployment patched)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson

from detector.config import Settings
from detector.deadletter import DeadLetter
from detector.detections import Detection
from detector.events import Event
from detector.normalize import NormalizeStage
from detector.normalize.builtin import build_registry
from detector.sources.records import RawRecord

from .conftest import Correlator, at

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sources"

RULES = """
title: Branch protection removed
id: 3c1e9f00-5555-4555-8555-000000000001
name: branch_protection_removed
logsource: {product: cicd, service: github}
detection: {selection: {event.action: protected_branch.destroy}, condition: selection}
---
title: Deploy job completed
id: 3c1e9f00-5555-4555-8555-000000000002
name: deploy_job
logsource: {product: cicd, service: github_actions}
detection: {selection: {event.action: workflow_job.completed}, condition: selection}
---
title: Image pushed
id: 3c1e9f00-5555-4555-8555-000000000003
name: image_pushed
logsource: {product: cicd, service: registry}
detection: {selection: {event.action: push, resource.kind: manifest}, condition: selection}
---
title: Deployment patched
id: 3c1e9f00-5555-4555-8555-000000000004
name: deployment_patched
logsource: {product: cicd, service: kubernetes}
detection: {selection: {event.action: patch deployments}, condition: selection}
---
title: Unprotected change shipped to production
id: 3c1e9f00-5555-4555-8555-000000000005
correlation:
  type: temporal_ordered
  rules: [branch_protection_removed, deploy_job, image_pushed, deployment_patched]
  group-by: [user.name]
  timespan: 30m
level: critical
tags: [attack.t1195.002]
"""


def _github(epoch_ms: int, actor: str) -> dict[str, Any]:
    line = (FIXTURES / "github" / "audit.jsonl").read_bytes().splitlines()[6]
    record: dict[str, Any] = orjson.loads(line)
    assert record["action"] == "protected_branch.destroy"
    record.update({"@timestamp": epoch_ms, "created_at": epoch_ms, "actor": actor})
    return record


def _actions_job(completed_at: str, sender: str) -> dict[str, Any]:
    record: dict[str, Any] = orjson.loads(
        (FIXTURES / "github_actions" / "workflow_job.completed.json").read_bytes()
    )
    record["workflow_job"].update(
        {
            "created_at": "2025-03-11T10:01:11Z",
            "started_at": "2025-03-11T10:01:19Z",
            "completed_at": completed_at,
        }
    )
    record["sender"]["login"] = sender
    return record


def _registry_push(timestamp: str, actor: str) -> dict[str, Any]:
    envelope = orjson.loads((FIXTURES / "registry" / "distribution-push.json").read_bytes())
    manifest = copy.deepcopy(envelope["events"][1])
    assert manifest["target"]["tag"] == "v1.4.2"
    manifest.update({"timestamp": timestamp, "actor": {"name": actor}})
    return {"events": [manifest]}


def _kubernetes_patch(stage_timestamp: str, username: str) -> dict[str, Any]:
    line = (FIXTURES / "kubernetes" / "audit.jsonl").read_bytes().splitlines()[9]
    record: dict[str, Any] = orjson.loads(line)
    assert record["verb"] == "patch"
    record["user"] = {"username": username, "groups": ["devs", "system:authenticated"]}
    record.update(requestReceivedTimestamp=stage_timestamp, stageTimestamp=stage_timestamp)
    return record


def _events(*records: dict[str, Any]) -> list[Event]:
    stage = NormalizeStage(build_registry(Settings().sources))
    events: list[Event] = []
    for number, record in enumerate(records):
        for result in stage.process(RawRecord(orjson.dumps(record), f"scenario:{number}")):
            assert not isinstance(result, DeadLetter), result.reason
            events.append(result)
    return events


def _scenario(
    k8s_time: str = "2025-03-11T10:09:00.000000Z", k8s_user: str = "alice"
) -> list[Event]:
    return _events(
        _github(1741687200000, "alice"),  # 10:00:00
        _actions_job("2025-03-11T10:06:00Z", "alice"),
        _registry_push("2025-03-11T11:07:30.250+01:00", "alice"),  # 10:07:30.25 UTC
        _kubernetes_patch(k8s_time, k8s_user),
    )


def _detections(events: list[Event]) -> list[Detection]:
    run = Correlator(RULES, base=False)
    out: list[Detection] = []
    for item in events:
        out += [d for d in run.stage.process(item) if isinstance(d, Detection)]
    return out + run.stage.flush()


def test_one_identity_across_four_sources_in_order_gives_one_detection():
    events = _scenario()
    assert [(e.event_source, e.user_name) for e in events] == [
        ("github", "alice"),
        ("github_actions", "alice"),
        ("registry", "alice"),
        ("kubernetes", "alice"),
    ]
    # arrival order does not matter (files are read source by source); event time does
    [detection] = _detections([events[3], events[1], events[0], events[2]])
    assert detection.rule.title == "Unprotected change shipped to production"
    assert detection.rule.level == "critical"
    assert detection.rule.tags == ["attack.t1195.002"]
    assert detection.group == {"user.name": "alice"}
    assert detection.timestamp == at(9)
    assert [(e.source, e.action) for e in detection.evidence] == [
        ("github", "protected_branch.destroy"),
        ("github_actions", "workflow_job.completed"),
        ("registry", "push"),
        ("kubernetes", "patch deployments"),
    ]
    assert detection.message == (
        "Unprotected change shipped to production: temporal_ordered: 4 of 4 rules in order "
        "(gte 4) within 30m, for user.name=alice"
    )


def test_the_same_events_out_of_order_give_none():
    # the deployment is patched before the image is pushed
    assert _detections(_scenario(k8s_time="2025-03-11T10:07:00.000000Z")) == []


def test_another_identity_or_a_longer_span_gives_none():
    assert _detections(_scenario(k8s_user="bob")) == []
    assert _detections(_scenario(k8s_time="2025-03-11T10:30:00.000001Z")) == []
