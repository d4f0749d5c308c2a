"""Correlations of correlations, `generate`, and aliases joining fields of different sources."""

from __future__ import annotations

from collections.abc import Callable

import orjson

from detector.config import Settings
from detector.detections import Detection
from detector.events import Event
from detector.normalize import NormalizeStage
from detector.normalize.builtin import build_registry
from detector.sources.records import RawRecord

from .conftest import Correlator, at

Make = Callable[..., Event]

CHAIN = """
title: Many failed logins
id: 7d1f0a52-3333-4333-8333-000000000001
name: many_failed
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [user.name]
  timespan: 10m
  condition: {gte: 3}
---
title: Brute force succeeded
id: 7d1f0a52-3333-4333-8333-000000000002
correlation:
  type: temporal_ordered
  rules: [many_failed, login]
  group-by: [user.name]
  timespan: 10m
level: critical
"""


def _emitted(run: Correlator, events: list[Event]) -> list[Detection]:
    out: list[Detection] = []
    for item in events:
        out += [d for d in run.stage.process(item) if isinstance(d, Detection)]
    return out + run.stage.flush()


def test_a_chain_fires_on_the_detections_of_the_correlation_it_references(
    correlator: type[Correlator], event: Make
):
    run = correlator(CHAIN)
    events = [event(m, "login.failed") for m in (0, 1, 2)] + [event(3, "login.success")]
    [detection] = _emitted(run, events)
    assert detection.rule.title == "Brute force succeeded"
    assert detection.rule.level == "critical"
    assert detection.group == {"user.name": "alice"}
    assert detection.timestamp == at(3)
    assert [e.action for e in detection.evidence] == ["login.failed"] * 3 + ["login.success"]
    assert run.engine.stats.detections == {
        "7d1f0a52-3333-4333-8333-000000000001": 1,
        "7d1f0a52-3333-4333-8333-000000000002": 1,
    }


def test_a_chain_keeps_its_own_order(correlator: type[Correlator], event: Make):
    events = [event(0, "login.success")] + [event(m, "login.failed") for m in (1, 2, 3)]
    assert _emitted(correlator(CHAIN), events) == []


def test_generate_true_keeps_the_referenced_rules_detections(
    correlator: type[Correlator], event: Make
):
    rules = CHAIN.replace("  timespan: 10m\nlevel", "  timespan: 10m\n  generate: true\nlevel")
    run = correlator(rules)
    events = [event(m, "login.failed") for m in (0, 1, 2)] + [event(3, "login.success")]
    titles = [d.rule.title for d in _emitted(run, events)]
    # failed_login is still silenced by many_failed (generate defaults to false)
    assert titles == ["Successful login", "Many failed logins", "Brute force succeeded"]


def test_generate_false_silences_only_referenced_rules(correlator: type[Correlator], event: Make):
    run = correlator(CHAIN)
    silenced = {rule.title for rule in run.correlations.silenced}
    assert silenced == {"Failed login", "Successful login", "Many failed logins"}
    [single] = _emitted(run, [event(0, "secret.read")])
    assert single.rule.title == "Secret read"
    assert single.window is None


def _normalize(*records: dict[str, object]) -> list[Event]:
    stage = NormalizeStage(build_registry(Settings().sources))
    events = []
    for number, record in enumerate(records):
        [result] = stage.process(RawRecord(orjson.dumps(record), f"test:{number}"))
        assert isinstance(result, Event), result
        events.append(result)
    return events


def _github_clone(time_ms: int, nameid: str) -> dict[str, object]:
    """A git.clone of the GitHub enterprise audit log stream, SSO identity included."""
    return {
        "@timestamp": time_ms,
        "_document_id": f"clone-{time_ms}",
        "action": "git.clone",
        "actor": "mallory-dev",
        "actor_id": 7712034,
        "actor_ip": "198.51.100.23",
        "actor_location": {"country_code": "DE"},
        "business": "octo-corp",
        "business_id": 4242,
        "created_at": time_ms,
        "external_identity_nameid": nameid,
        "external_identity_username": nameid,
        "hashed_token": "q5Yd0H3Wc4J0tLZ8m2k5J9xvQ1v2b3n4m5Q6w7e8r9o=",
        "org": "octo-org",
        "org_id": 9919,
        "programmatic_access_type": "Personal access token (classic)",
        "repo": "octo-org/payments",
        "repo_id": 77001,
        "repository": "octo-org/payments",
        "repository_public": False,
        "token_id": 9123456,
        "transport_protocol": 1,
        "transport_protocol_name": "http",
        "user_agent": "git/2.47.1",
    }


def _kubernetes_exec(stage_time: str, username: str) -> dict[str, object]:
    """A pods/exec request of the Kubernetes audit log (audit.k8s.io/v1)."""
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": f"5b0c7a1e-{len(username):04d}-4e2a-9c1d-8f3e2a1b0c9d",
        "stage": "ResponseStarted",
        "requestURI": "/api/v1/namespaces/prod/pods/api-7d9f8b6c5-x2x4q/exec?command=sh"
        "&container=api&stdin=true&stdout=true&tty=true",
        "verb": "create",
        "user": {"username": username, "groups": ["devs", "system:authenticated"]},
        "sourceIPs": ["198.51.100.23"],
        "userAgent": "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46",
        "objectRef": {
            "resource": "pods",
            "namespace": "prod",
            "name": "api-7d9f8b6c5-x2x4q",
            "apiVersion": "v1",
            "subresource": "exec",
        },
        "responseStatus": {"metadata": {}, "code": 101},
        "requestReceivedTimestamp": stage_time,
        "stageTimestamp": stage_time,
        "annotations": {
            "authorization.k8s.io/decision": "allow",
            "authorization.k8s.io/reason": "",
        },
    }


ALIASES = """
title: Repository cloned
id: 7d1f0a52-3333-4333-8333-000000000011
name: github_clone
logsource: {product: github, service: audit}
detection: {selection: {action: git.clone}, condition: selection}
---
title: Exec into a pod
id: 7d1f0a52-3333-4333-8333-000000000012
name: kubernetes_exec
logsource: {product: kubernetes, service: audit}
detection:
  selection: {verb: create, objectRef.resource: pods, objectRef.subresource: exec}
  condition: selection
---
title: Clone and exec by one identity
id: 7d1f0a52-3333-4333-8333-000000000013
correlation:
  type: temporal
  rules: [github_clone, kubernetes_exec]
  group-by: [identity]
  aliases:
    identity:
      github_clone: external_identity_nameid
      kubernetes_exec: user.username
  timespan: 30m
"""

CLONE_MS = 1741687200000  # 2025-03-11T10:00:00Z


def test_aliases_join_a_github_actor_and_a_kubernetes_user(correlator: type[Correlator]):
    events = _normalize(
        _github_clone(CLONE_MS, "Mallory@example.com"),
        _kubernetes_exec("2025-03-11T10:20:00.000000Z", "mallory@example.com"),
    )
    [detection] = correlator(ALIASES, base=False).run(events)
    assert detection.group == {"identity": "mallory@example.com"}
    assert [(e.source, e.actor) for e in detection.evidence] == [
        ("github", "mallory-dev"),
        ("kubernetes", "mallory@example.com"),
    ]
    assert detection.message == (
        "Clone and exec by one identity: temporal: 2 of 2 rules (gte 2) within 30m, "
        "for identity=mallory@example.com"
    )


def test_aliases_keep_different_identities_apart(correlator: type[Correlator]):
    events = _normalize(
        _github_clone(CLONE_MS, "mallory@example.com"),
        _kubernetes_exec("2025-03-11T10:20:00.000000Z", "alice@example.com"),
    )
    assert correlator(ALIASES, base=False).run(events) == []


def test_an_empty_sso_identity_joins_no_group(correlator: type[Correlator]):
    """GitHub writes "" when SSO is off: no identity, not one shared "unknown" identity."""
    run = correlator(ALIASES, base=False)
    events = _normalize(
        _github_clone(CLONE_MS, ""),
        _kubernetes_exec("2025-03-11T10:20:00.000000Z", "mallory@example.com"),
    )
    assert run.run(events) == []
    assert run.engine.stats.ungrouped == 1


SPEC_CHAIN = """
title: Many failed logins on a host
id: 7d1f0a52-3333-4333-8333-000000000021
name: many_failed_on_host
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [source.ip]
  timespan: 10m
  condition: {gte: 3}
---
title: Failed logins then a login by the user
id: 7d1f0a52-3333-4333-8333-000000000022
correlation:
  type: temporal_ordered
  rules: [many_failed_on_host, login]
  group-by: [user.name]
  timespan: 10m
"""


def test_a_chain_may_group_by_a_field_the_referenced_correlation_does_not(
    correlator: type[Correlator], event: Make
):
    """As in the specification: the referenced correlation groups by host, the chain by
    user; the users come from the events behind the referenced detection."""
    host = {"source_ip": "10.0.0.7"}
    run = correlator(SPEC_CHAIN)
    [child, parent] = run.correlations.rules
    assert child.carry == ("user.name",)
    assert parent.carry == ()
    events = [
        event(0, "login.failed", "alice", **host),
        event(1, "login.failed", "bob", **host),
        event(2, "login.failed", "alice", **host),
        event(3, "login.success", "bob"),
        event(4, "login.success", "carol"),
    ]
    [detection] = _emitted(run, events)
    assert detection.group == {"user.name": "bob"}
    assert [e.id for e in detection.evidence] == [
        "login.failed:bob:1",
        "login.success:bob:3",
    ]


def test_carried_fields_go_through_every_link_of_a_chain(correlator: type[Correlator], event: Make):
    rules = (
        SPEC_CHAIN.replace(
            "group-by: [user.name]\n  timespan: 10m\n",
            "group-by: [user.name]\n  timespan: 10m\nname: host_then_login\n",
        )
        + """
---
title: Then a secret read from the same address
id: 7d1f0a52-3333-4333-8333-000000000023
correlation:
  type: temporal_ordered
  rules: [host_then_login, secret_read]
  group-by: [user.name, organization]
  timespan: 30m
"""
    )
    run = correlator(rules)
    assert [rule.carry for rule in run.correlations.rules] == [
        ("organization", "user.name"),
        ("organization",),
        (),
    ]
    org = {"organization": "octo-org"}
    events = [
        event(0, "login.failed", "alice", source_ip="10.0.0.7", **org),
        event(1, "login.failed", "alice", source_ip="10.0.0.7", **org),
        event(2, "login.failed", "alice", source_ip="10.0.0.7", **org),
        event(3, "login.success", "alice", **org),
        event(4, "secret.read", "alice", **org),
    ]
    [detection] = _emitted(run, events)
    assert detection.group == {"user.name": "alice", "organization": "octo-org"}
    assert len(detection.evidence) == 5
