"""Kubernetes audit normalizer: fixtures of both backends, mapping choices, robustness."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.events import Event
from detector.normalize.base import NormalizationError, content_id
from detector.normalize.kubernetes import KubernetesAuditNormalizer
from tests.strategies import JSON_VALUES as JSON

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sources" / "kubernetes"
NORMALIZER = KubernetesAuditNormalizer()

MALLORY_CERT = "X509SHA256=c0a497761b175379ed63397cc980546559faa84ca9cbeede773117c31508b6ac"
KUBECTL = "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46"

# Verbatim Falco trace (log-formats.md 3.4 b): no apiVersion, v1beta1-era extras.
FALCO_EXEC_TRACE = orjson.loads(
    r"""{"annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":""},"auditID":"ca1ed9f4-7bf4-4c85-81a8-1b11253d1ba6","kind":"Event","level":"Request","metadata":{"creationTimestamp":"2018-10-26T13:38:34Z"},"objectRef":{"apiVersion":"v1","name":"nginx-deployment-7998647bdf-phvq7","namespace":"default","resource":"pods","subresource":"exec"},"requestReceivedTimestamp":"2018-10-26T13:38:34.867116Z","requestURI":"/api/v1/namespaces/default/pods/nginx-deployment-7998647bdf-phvq7/exec?command=bash&container=nginx1&container=nginx1&stdin=true&stdout=true&tty=true","responseStatus":{"code":101,"metadata":{}},"sourceIPs":["192.168.99.1"],"stage":"ResponseStarted","stageTimestamp":"2018-10-26T13:38:34.902914Z","timestamp":"2018-10-26T13:38:34Z","user":{"groups":["system:masters","system:authenticated"],"username":"minikube-user"},"verb":"create"}"""
)


def audit_lines() -> list[dict[str, Any]]:
    text = (FIXTURES / "audit.jsonl").read_text(encoding="utf-8")
    return [orjson.loads(line) for line in text.splitlines()]


def webhook_list() -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads((FIXTURES / "webhook-eventlist.json").read_bytes())
    return document


def by_audit_id(audit_id: str, stage: str = "ResponseComplete") -> dict[str, Any]:
    records = [*audit_lines(), *webhook_list()["items"]]
    return next(r for r in records if r["auditID"] == audit_id and r["stage"] == stage)


def fields(record: dict[str, Any]) -> dict[str, Any]:
    """The normalized JSON shape without `raw`."""
    shape = NORMALIZER.normalize(record).to_dict()
    assert shape.pop("raw") == record
    return shape


def minimal(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": "00000000-0000-4000-8000-000000000001",
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/default/pods",
        "verb": "list",
        "user": {"username": "dev@example.com", "groups": ["system:authenticated"]},
        "sourceIPs": ["192.0.2.10"],
        "objectRef": {"resource": "pods", "namespace": "default", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": "2025-05-02T08:00:00.000001Z",
        "stageTimestamp": "2025-05-02T08:00:00.000002Z",
    }
    record.update(overrides)
    return record


def test_logsource_names_the_sigma_kubernetes_audit_rules() -> None:
    assert (NORMALIZER.name, NORMALIZER.product, NORMALIZER.service) == (
        "kubernetes",
        "kubernetes",
        "audit",
    )


def test_every_log_backend_line_is_recognized_and_normalized() -> None:
    for record in audit_lines():
        assert NORMALIZER.matches(record)
        event = NORMALIZER.normalize(record)
        assert event.event_source == "kubernetes"
        assert orjson.loads(event.to_json())["raw"] == record


def test_verbatim_elastic_line() -> None:
    assert fields(by_audit_id("abcde12345")) == {
        "@timestamp": "2025-07-16T10:12:56.563177Z",
        "event.id": "abcde12345:ResponseComplete",
        "event.source": "kubernetes",
        "event.action": "get leases",
        "event.category": ["api"],
        "event.type": ["access"],
        "event.outcome": "success",
        "user.name": "system:serviceaccount:kube-system:elastic-agent",
        "user.id": "12345678",
        "user.type": "service_account",
        "source.ip": "67.43.156.1",
        "user_agent.original": "elastic-agent/v0.0.0 (linux/amd64) kubernetes/$Format",
        "namespace": "kube-system",
        "resource.kind": "leases",
        "resource.name": "elastic-agent-cluster-test",
    }


def test_exec_into_pod_is_one_request_in_two_stages() -> None:
    started = fields(by_audit_id("ca1ed9f4-7bf4-4c85-81a8-1b11253d1ba6", "ResponseStarted"))
    completed = fields(by_audit_id("ca1ed9f4-7bf4-4c85-81a8-1b11253d1ba6", "ResponseComplete"))
    assert started == {
        "@timestamp": "2018-10-26T13:38:34.902914Z",
        "event.id": "ca1ed9f4-7bf4-4c85-81a8-1b11253d1ba6:ResponseStarted",
        "event.source": "kubernetes",
        "event.action": "create pods/exec",
        "event.category": ["api"],
        "event.type": ["creation"],
        "event.outcome": "success",
        "user.name": "minikube-user",
        "user.type": "human",
        "source.ip": "192.168.99.1",
        "user_agent.original": "kubectl/v1.12.1 (linux/amd64) kubernetes/4ed3216",
        "namespace": "default",
        "resource.kind": "pods",
        "resource.name": "nginx-deployment-7998647bdf-phvq7",
    }
    assert completed["event.id"] == "ca1ed9f4-7bf4-4c85-81a8-1b11253d1ba6:ResponseComplete"
    assert completed["@timestamp"] == "2018-10-26T13:41:07.330512Z"
    assert {k: v for k, v in completed.items() if k not in ("event.id", "@timestamp")} == {
        k: v for k, v in started.items() if k not in ("event.id", "@timestamp")
    }


def test_request_received_stage_has_no_outcome_yet() -> None:
    received = fields(by_audit_id("f1e2d3c4-b5a6-4978-8a6b-5c4d3e2f1a0b", "RequestReceived"))
    completed = fields(by_audit_id("f1e2d3c4-b5a6-4978-8a6b-5c4d3e2f1a0b", "ResponseComplete"))
    assert received["event.id"] == "f1e2d3c4-b5a6-4978-8a6b-5c4d3e2f1a0b:RequestReceived"
    assert received["@timestamp"] == "2025-05-02T08:23:45.009871Z"
    assert "event.outcome" not in received
    assert completed["event.outcome"] == "success"
    assert received["event.action"] == completed["event.action"] == "delete events"
    assert received["event.type"] == ["deletion"]
    assert received["resource.name"] == "api-7d9f8b6c5-x2x4q.17f3a1b2c3d4e5f6"


def test_impersonation_keeps_the_authenticated_user_and_forbid_is_a_failure() -> None:
    record = by_audit_id("7b1e0c55-3f4a-4d0e-9a51-5c2b8f0d9e11")
    assert fields(record) == {
        "@timestamp": "2025-05-02T08:15:30.106877Z",
        "event.id": "7b1e0c55-3f4a-4d0e-9a51-5c2b8f0d9e11:ResponseComplete",
        "event.source": "kubernetes",
        "event.action": "list secrets",
        "event.category": ["api"],
        "event.type": ["access", "denied"],
        "event.outcome": "failure",
        "user.name": "alice@example.com",
        "user.type": "human",
        "source.ip": "10.0.4.17",
        "user_agent.original": KUBECTL,
        "namespace": "prod",
        "resource.kind": "secrets",
        "token.id": "X509SHA256=9f2c...",
    }
    event = NORMALIZER.normalize(record)
    assert event.raw["impersonatedUser"]["username"] == "system:serviceaccount:prod:deployer"


def test_cluster_wide_secret_list_has_no_namespace() -> None:
    shape = fields(by_audit_id("3f6c1d2e-8b4a-4c0f-9e7d-2a5b6c8d9e01"))
    assert shape["event.action"] == "list secrets"
    assert shape["event.outcome"] == "success"
    assert "namespace" not in shape
    assert "resource.name" not in shape
    assert shape["token.id"] == MALLORY_CERT


def test_service_account_token_request() -> None:
    assert fields(by_audit_id("e2b7a9c4-5d31-4f6e-8a0b-91c3d4e5f607")) == {
        "@timestamp": "2025-05-02T08:17:41.210954Z",
        "event.id": "e2b7a9c4-5d31-4f6e-8a0b-91c3d4e5f607:ResponseComplete",
        "event.source": "kubernetes",
        "event.action": "create serviceaccounts/token",
        "event.category": ["api", "iam"],
        "event.type": ["creation"],
        "event.outcome": "success",
        "user.name": "mallory@example.com",
        "user.type": "human",
        "source.ip": "198.51.100.23",
        "user_agent.original": KUBECTL,
        "namespace": "kube-system",
        "resource.kind": "serviceaccounts",
        "resource.name": "clusterrole-aggregation-controller",
        "token.id": MALLORY_CERT,
    }


def test_node_identity_is_a_service_account() -> None:
    shape = fields(by_audit_id("4c9d2e71-0b6a-4e58-b3f2-6a7d8e9f0a12"))
    assert shape["user.name"] == "system:node:worker-1"
    assert shape["user.type"] == "service_account"
    assert shape["event.action"] == "create serviceaccounts/token"
    assert shape["source.ip"] == "10.0.1.21"


def test_clusterrolebinding_to_cluster_admin() -> None:
    record = by_audit_id("c97244c7-4aec-4714-946a-8204d00ecdca")
    assert fields(record) == {
        "@timestamp": "2025-05-02T08:19:12.242498Z",
        "event.id": "c97244c7-4aec-4714-946a-8204d00ecdca:ResponseComplete",
        "event.source": "kubernetes",
        "event.action": "create clusterrolebindings",
        "event.category": ["api", "iam"],
        "event.type": ["creation"],
        "event.outcome": "success",
        "user.name": "mallory@example.com",
        "user.type": "human",
        "source.ip": "198.51.100.23",
        "user_agent.original": KUBECTL,
        "resource.kind": "clusterrolebindings",
        "resource.name": "some-reader-binding",
        "token.id": MALLORY_CERT,
    }
    assert record["requestObject"]["roleRef"]["name"] == "cluster-admin"


def test_privileged_pod_carries_its_single_image() -> None:
    shape = fields(by_audit_id("9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"))
    assert shape["event.action"] == "create pods"
    assert shape["namespace"] == "kube-system"
    assert shape["resource.name"] == "node-debugger"
    assert shape["image.name"] == "acme/debug-tools"
    assert shape["image.digest"] == (
        "sha256:7cc5cf78026ffff1200b3d9e10d0e97f9a80fc6d9ca68b3da8f4b19d2c3c97db"
    )


def test_service_account_token_in_a_pod() -> None:
    assert fields(by_audit_id("0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6")) == {
        "@timestamp": "2025-05-02T08:21:05.731602Z",
        "event.id": "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6:ResponseComplete",
        "event.source": "kubernetes",
        "event.action": "patch deployments",
        "event.category": ["api"],
        "event.type": ["change"],
        "event.outcome": "success",
        "user.name": "system:serviceaccount:ci:deployer",
        "user.id": "5b2c9e4f-7a18-4d3c-9e6b-0f1a2b3c4d5e",
        "user.type": "service_account",
        "source.ip": "10.244.1.17",
        "user_agent.original": KUBECTL,
        "namespace": "prod",
        "resource.kind": "deployments",
        "resource.name": "api",
        "token.id": "JTI=7f3e2d1c-0b9a-4887-a6f5-e4d3c2b1a098",
    }


def test_anonymous_non_resource_request() -> None:
    assert fields(by_audit_id("b5c6d7e8-f9a0-4b1c-8d2e-3f4a5b6c7d8e")) == {
        "@timestamp": "2025-05-02T08:22:10.118544Z",
        "event.id": "b5c6d7e8-f9a0-4b1c-8d2e-3f4a5b6c7d8e:ResponseComplete",
        "event.source": "kubernetes",
        "event.action": "get /version",
        "event.category": ["api"],
        "event.type": ["access"],
        "event.outcome": "success",
        "user.name": "system:anonymous",
        "source.ip": "203.0.113.45",
        "user_agent.original": "curl/8.5.0",
    }


def test_anonymous_forbidden_takes_the_last_source_ip() -> None:
    shape = fields(by_audit_id("c6d7e8f9-a0b1-4c2d-9e3f-4a5b6c7d8e9f"))
    assert shape["source.ip"] == "203.0.113.45"
    assert shape["event.outcome"] == "failure"
    assert shape["event.type"] == ["access", "denied"]
    assert "user.type" not in shape


def test_webhook_eventlist_is_unwrapped_into_its_items() -> None:
    document = webhook_list()
    items = NORMALIZER.unwrap(document)
    assert items is not None
    assert list(items) == document["items"]
    assert all("kind" not in item and "apiVersion" not in item for item in items)
    assert all(NORMALIZER.matches(item) for item in items)
    shapes = [fields(item) for item in items]
    assert [s["event.action"] for s in shapes] == [
        "create mutatingwebhookconfigurations",
        "create selfsubjectrulesreviews",
        "create cronjobs",
    ]
    assert shapes[2] == {
        "@timestamp": "2025-05-02T08:25:02.902276Z",
        "event.id": "3c4d5e6f-7a8b-4c9d-8e0f-2a3b4c5d6e7f:ResponseComplete",
        "event.source": "kubernetes",
        "event.action": "create cronjobs",
        "event.category": ["api"],
        "event.type": ["creation"],
        "event.outcome": "success",
        "user.name": "mallory@example.com",
        "user.type": "human",
        "source.ip": "198.51.100.23",
        "user_agent.original": KUBECTL,
        "namespace": "kube-system",
        "resource.kind": "cronjobs",
        "resource.name": "log-rotate",
        "image.name": "busybox",
        "token.id": MALLORY_CERT,
    }


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": None}, []),
        ({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": []}, []),
        ({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": {"a": 1}}, None),
        ({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": "x"}, None),
        ({"kind": "EventList", "apiVersion": "v1", "items": []}, None),
        ({"kind": "EventList", "items": []}, None),
        ({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "items": []}, None),
    ],
)
def test_unwrap_only_splits_audit_event_lists(
    document: dict[str, Any], expected: list[Any] | None
) -> None:
    result = NORMALIZER.unwrap(document)
    assert (None if result is None else list(result)) == expected


def test_older_falco_trace_shape_is_recognized() -> None:
    assert NORMALIZER.matches(FALCO_EXEC_TRACE)
    shape = fields(FALCO_EXEC_TRACE)
    assert shape["event.id"] == "ca1ed9f4-7bf4-4c85-81a8-1b11253d1ba6:ResponseStarted"
    assert shape["event.action"] == "create pods/exec"
    assert shape["@timestamp"] == "2018-10-26T13:38:34.902914Z"


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(
            {
                "kind": "Event",
                "apiVersion": "v1",
                "metadata": {"name": "api.17f3a1b2c3d4e5f6", "namespace": "prod"},
                "involvedObject": {"kind": "Pod", "name": "api"},
                "reason": "Killing",
                "type": "Normal",
            },
            id="core-v1-event",
        ),
        pytest.param(
            {"kind": "Event", "apiVersion": "events.k8s.io/v1", "reason": "Pulled", "note": "x"},
            id="events-k8s-io-event",
        ),
        pytest.param(
            {"kind": "Event", "apiVersion": "v1", "auditID": "a", "stage": "Panic", "verb": "get"},
            id="audit-keys-under-a-foreign-api-version",
        ),
        pytest.param(
            {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": []}, id="event-list"
        ),
        pytest.param(
            {"kind": "Event", "auditID": "a", "stage": "Done", "verb": "get"}, id="unknown-stage"
        ),
        pytest.param({"auditID": "a", "stage": "ResponseComplete"}, id="no-verb"),
        pytest.param(
            {"kind": "Pod", "auditID": "a", "stage": "ResponseComplete", "verb": "get"},
            id="other-kind",
        ),
        pytest.param(
            {
                "@timestamp": 1714637730104,
                "_document_id": "xyz",
                "action": "org.add_member",
                "actor": "mallory",
                "org": "acme",
            },
            id="github-audit",
        ),
        pytest.param(
            {
                "protoPayload": {
                    "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
                    "methodName": "io.k8s.core.v1.pods.create",
                },
                "timestamp": "2025-05-02T08:00:00Z",
            },
            id="gke-cloud-audit-log",
        ),
        pytest.param({}, id="empty"),
    ],
)
def test_matches_rejects_other_records(record: dict[str, Any]) -> None:
    assert NORMALIZER.matches(record) is False


def test_matches_accepts_audit_api_versions() -> None:
    assert NORMALIZER.matches(minimal())
    assert NORMALIZER.matches(minimal(apiVersion="audit.k8s.io/v1beta1"))


def test_time_falls_back_to_request_received_only_when_stage_time_is_absent() -> None:
    record = minimal()
    del record["stageTimestamp"]
    assert fields(record)["@timestamp"] == "2025-05-02T08:00:00.000001Z"
    assert fields(minimal(stageTimestamp=None))["@timestamp"] == "2025-05-02T08:00:00.000001Z"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (
            {"stageTimestamp": None, "requestReceivedTimestamp": None},
            "no stageTimestamp or requestReceivedTimestamp",
        ),
        ({"stageTimestamp": "yesterday"}, "bad stageTimestamp: not an ISO 8601 time: 'yesterday'"),
        (
            {"stageTimestamp": "2025-05-02T08:00:00.000002"},
            "bad stageTimestamp: time has no zone: '2025-05-02T08:00:00.000002'",
        ),
        (
            {"stageTimestamp": 1714637730},
            "bad stageTimestamp: expected an ISO 8601 string, got int",
        ),
        (
            {"stageTimestamp": "0001-01-01T00:00:00+01:00"},
            "bad stageTimestamp: time out of range in UTC: '0001-01-01T00:00:00+01:00'",
        ),
        (
            {"stageTimestamp": None, "requestReceivedTimestamp": ["2025-05-02T08:00:00Z"]},
            "bad requestReceivedTimestamp: expected an ISO 8601 string, got list",
        ),
    ],
)
def test_normalization_errors_name_the_reason(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(NormalizationError) as caught:
        NORMALIZER.normalize(minimal(**overrides))
    assert str(caught.value) == reason


def test_record_without_audit_id_gets_a_content_id() -> None:
    record = minimal(auditID=None)
    assert NORMALIZER.normalize(record).event_id == content_id(record)


@pytest.mark.parametrize(
    ("username", "expected"),
    [
        ("system:serviceaccount:ci:deployer", "service_account"),
        ("system:node:worker-1", "service_account"),
        ("system:kube-controller-manager", "service_account"),
        ("system:anonymous", None),
        ("kubernetes-admin", "human"),
        ("alice@example.com", "human"),
        (None, None),
    ],
)
def test_user_type(username: str | None, expected: str | None) -> None:
    record = minimal(user={"username": username})
    assert NORMALIZER.normalize(record).user_type == expected


@pytest.mark.parametrize(
    ("status", "annotations", "expected"),
    [
        ({"code": 201}, {}, "success"),
        ({"code": 101}, {}, "success"),
        (
            {"code": 404, "reason": "NotFound"},
            {"authorization.k8s.io/decision": "allow"},
            "failure",
        ),
        ({"code": 500}, {}, "failure"),
        (None, {"authorization.k8s.io/decision": "forbid"}, "failure"),
        (None, {"authorization.k8s.io/decision": "allow"}, None),
        ({"code": "200"}, {}, None),
        ({"code": True}, {}, None),
    ],
)
def test_outcome(
    status: dict[str, Any] | None, annotations: dict[str, str], expected: str | None
) -> None:
    record = minimal(responseStatus=status, annotations=annotations)
    assert NORMALIZER.normalize(record).event_outcome == expected


@pytest.mark.parametrize(
    ("overrides", "action", "types"),
    [
        ({"verb": "deletecollection"}, "deletecollection pods", ["deletion"]),
        ({"verb": "watch"}, "watch pods", ["access"]),
        ({"verb": "update"}, "update pods", ["change"]),
        (
            {
                "verb": "get",
                "objectRef": {"resource": "nodes", "name": "worker-1", "subresource": "proxy"},
            },
            "get nodes/proxy",
            ["access"],
        ),
        (
            {"verb": "post", "objectRef": None, "requestURI": "/apis?timeout=32s"},
            "post /apis",
            None,
        ),
        ({"verb": None}, None, None),
    ],
)
def test_action_and_type(
    overrides: dict[str, Any], action: str | None, types: list[str] | None
) -> None:
    event = NORMALIZER.normalize(minimal(**overrides))
    assert (event.event_action, event.event_type) == (action, types)


def pod(*images: str, init: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": "p"},
        "spec": {
            "initContainers": [{"name": f"i{n}", "image": i} for n, i in enumerate(init)],
            "containers": [{"name": f"c{n}", "image": i} for n, i in enumerate(images)],
        },
    }


@pytest.mark.parametrize(
    ("overrides", "name", "digest"),
    [
        ({"verb": "create", "requestObject": pod("nginx:1.27")}, "nginx", None),
        (
            {"verb": "create", "requestObject": pod("registry.local:5000/team/app")},
            "team/app",
            None,
        ),
        (
            {"verb": "update", "requestObject": pod("registry.local:5000/app:v2@sha256:ab")},
            "app",
            "sha256:ab",
        ),
        (
            {"verb": "create", "requestObject": pod("app:1", "app:1", init=("app:1",))},
            "app",
            None,
        ),
        ({"verb": "create", "requestObject": pod("app:1", "sidecar:2")}, None, None),
        ({"verb": "create", "requestObject": pod("app:1", init=("busybox:1.36",))}, None, None),
        ({"verb": "patch", "requestObject": pod("nginx:1.27")}, "nginx", None),
        (
            {
                "verb": "create",
                "objectRef": {"resource": "pods", "subresource": "ephemeralcontainers"},
                "requestObject": pod("nginx:1.27"),
            },
            None,
            None,
        ),
        (
            {
                "verb": "create",
                "objectRef": {"resource": "deployments", "apiGroup": "apps"},
                "requestObject": {"spec": {"template": pod("ghcr.io/acme/api:1.4")}},
            },
            "acme/api",
            None,
        ),
        (
            {
                "verb": "create",
                "objectRef": {"resource": "configmaps"},
                "requestObject": pod("nginx:1.27"),
            },
            None,
            None,
        ),
    ],
)
def test_image_only_when_unambiguous(
    overrides: dict[str, Any], name: str | None, digest: str | None
) -> None:
    event = NORMALIZER.normalize(minimal(**overrides))
    assert (event.image_name, event.image_digest) == (name, digest)


@pytest.mark.parametrize(
    ("extra", "token"),
    [
        ({"authentication.kubernetes.io/credential-id": ["JTI=abc"]}, "JTI=abc"),
        ({"authentication.kubernetes.io/credential-id": ["JTI=a", "JTI=b"]}, None),
        ({"authentication.kubernetes.io/credential-id": "JTI=abc"}, None),
        ({}, None),
    ],
)
def test_token_id_from_a_single_credential_id(extra: dict[str, Any], token: str | None) -> None:
    record = minimal(user={"username": "system:serviceaccount:ci:deployer", "extra": extra})
    assert NORMALIZER.normalize(record).token_id == token


def test_normalize_leaves_the_record_untouched() -> None:
    record = by_audit_id("9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d")
    before = copy.deepcopy(record)
    assert NORMALIZER.normalize(record).raw is record
    assert record == before


TIMES = st.sampled_from(
    [
        "2025-05-02T08:00:00.123456Z",
        "2025-05-02T08:00:00Z",
        "2025-05-02T10:00:00+02:00",
        "0001-01-01T00:00:00+01:00",
    ]
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return strategy | JSON


AUDIT_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "kind": maybe(st.sampled_from(["Event", "EventList"])),
        "apiVersion": maybe(st.sampled_from(["audit.k8s.io/v1", "v1"])),
        "auditID": maybe(st.uuids().map(str)),
        "stage": maybe(st.sampled_from(["RequestReceived", "ResponseComplete", "Panic"])),
        "verb": maybe(st.sampled_from(["create", "get", "patch", "delete"])),
        "requestURI": JSON,
        "user": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "username": maybe(st.sampled_from(["system:anonymous", "dev"])),
                    "uid": JSON,
                    "extra": maybe(
                        st.fixed_dictionaries(
                            {},
                            optional={"authentication.kubernetes.io/credential-id": JSON},
                        )
                    ),
                },
            )
        ),
        "sourceIPs": JSON,
        "userAgent": JSON,
        "objectRef": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "resource": maybe(st.sampled_from(["pods", "cronjobs", "roles"])),
                    "subresource": JSON,
                    "namespace": JSON,
                    "name": JSON,
                },
            )
        ),
        "responseStatus": maybe(st.fixed_dictionaries({"code": JSON})),
        "requestObject": maybe(
            st.fixed_dictionaries(
                {"spec": maybe(st.fixed_dictionaries({"containers": JSON, "template": JSON}))}
            )
        ),
        "annotations": maybe(
            st.fixed_dictionaries({"authorization.k8s.io/decision": maybe(st.just("forbid"))})
        ),
        "stageTimestamp": maybe(TIMES),
        "requestReceivedTimestamp": maybe(TIMES),
        "items": JSON,
    },
)


def check_robust(record: dict[str, Any]) -> None:
    assert isinstance(NORMALIZER.matches(record), bool)
    unwrapped = NORMALIZER.unwrap(record)
    assert unwrapped is None or isinstance(unwrapped, list)
    try:
        event = NORMALIZER.normalize(record)
    except NormalizationError:
        return
    assert isinstance(event, Event)
    assert orjson.loads(event.to_json())["event.source"] == "kubernetes"


@settings(max_examples=300)
@given(st.dictionaries(st.text(max_size=12), JSON))
def test_arbitrary_dicts_never_break_the_normalizer(record: dict[str, Any]) -> None:
    check_robust(record)


@settings(max_examples=500)
@given(AUDIT_LIKE)
def test_audit_shaped_dicts_never_break_the_normalizer(record: dict[str, Any]) -> None:
    check_robust(record)


@pytest.mark.parametrize(
    ("username", "expected"),
    [
        ("eks:addon-manager", "service_account"),
        ("aksService", "service_account"),
        ("system:node:worker-1", "service_account"),
        ("alice@example.com", "human"),
        ("aksel", "human"),
    ],
)
def test_managed_cluster_components_are_not_people(username: str, expected: str) -> None:
    record = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "auditID": "u1",
        "stage": "ResponseComplete",
        "verb": "get",
        "requestURI": "/version",
        "user": {"username": username},
        "stageTimestamp": "2025-05-02T08:15:30.106877Z",
    }
    assert KubernetesAuditNormalizer().normalize(record).user_type == expected
