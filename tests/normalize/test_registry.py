"""Registry normalizer: Distribution notifications and Harbor webhooks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from detector.config import SourcesSettings
from detector.events import Event
from detector.normalize import NormalizeStage
from detector.normalize.base import NormalizationError, content_id
from detector.normalize.builtin import build_registry
from detector.normalize.registry import RegistryNormalizer
from detector.sources.files import read_paths
from tests.strategies import JSON_VALUES

FIXTURES = Path(__file__).parent.parent / "fixtures" / "sources"
REGISTRY = FIXTURES / "registry"
NORMALIZER = RegistryNormalizer()

PULLED = "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf"
MANIFEST = "sha256:05b3abf2579a5eb66403cd78be557fd860633a1fe2103c7642030defe32c657f"
LAYER = "sha256:dac1d7cfa95021764849fd102524e141488c5e3a90f861dbb5a12d9ac8584f85"
DOCKER_UA = (
    "docker/27.3.1 go/go1.22.7 git-commit/41ca978 kernel/6.8.0-45-generic os/linux "
    "arch/amd64 UpstreamClient(Docker-Client/27.3.1 \\(linux\\))"
)


def load(name: str) -> Any:
    return orjson.loads((REGISTRY / name).read_bytes())


def events_of(name: str) -> list[dict[str, Any]]:
    envelope = load(name)
    events = NORMALIZER.unwrap(envelope)
    assert events is not None
    return list(events)


def harbor(**changes: Any) -> dict[str, Any]:
    return {**load("harbor-push.json"), **changes}


# Distribution ---------------------------------------------------------------------


def test_verbatim_pull_notification() -> None:
    [record] = events_of("distribution-pull.json")
    assert NORMALIZER.matches(record)
    event = NORMALIZER.normalize(record)
    assert event.to_dict() == {
        "@timestamp": "2016-03-09T22:44:26.402973Z",
        "event.id": "320678d8-ca14-430f-8bb6-4ca139cd83f7",
        "event.source": "registry",
        "event.action": "pull",
        "event.category": ["api"],
        "event.type": ["access"],
        "event.outcome": "success",
        "source.ip": "192.168.64.11",
        "user_agent.original": "curl/7.38.0",
        "resource.kind": "manifest",
        "resource.name": "latest",
        "image.name": "hello-world",
        "image.digest": PULLED,
        "raw": record,
    }
    assert event.raw is record


def test_anonymous_actor_leaves_user_absent() -> None:
    [record] = events_of("distribution-pull.json")
    event = NORMALIZER.normalize(record)
    assert record["actor"] == {}
    assert event.user_name is None and event.user_type is None


def test_push_of_a_layer_then_a_tagged_manifest() -> None:
    blob, manifest = (NORMALIZER.normalize(r) for r in events_of("distribution-push.json"))
    assert blob.timestamp == datetime(2025, 4, 16, 2, 48, 2, 907100, tzinfo=UTC)
    assert (blob.event_action, blob.event_type) == ("push", ["creation"])
    assert (blob.resource_kind, blob.resource_name) == ("blob", LAYER)
    assert blob.image_digest == LAYER
    assert manifest.timestamp == datetime(2025, 4, 16, 2, 48, 3, 117289, tzinfo=UTC)
    assert manifest.to_dict()["@timestamp"] == "2025-04-16T02:48:03.117289Z"
    assert manifest.event_id == "86586606-d0bb-4b7f-91ec-a066ca566412"
    assert (manifest.resource_kind, manifest.resource_name) == ("manifest", "v1.4.2")
    assert (manifest.image_name, manifest.image_digest) == ("payments/api", MANIFEST)
    assert manifest.user_name == "ci-deployer" and manifest.user_type is None
    assert manifest.source_ip == "2001:db8:4::17"
    assert manifest.user_agent == DOCKER_UA


def test_deletes_by_digest_and_by_tag() -> None:
    by_digest, by_tag = (NORMALIZER.normalize(r) for r in events_of("distribution-delete.json"))
    assert by_digest.to_dict() | {"raw": None} == {
        "@timestamp": "2025-04-16T03:12:40.550000Z",
        "event.id": "c5e53fbe-f53f-4627-9a0b-cb0d8f026b81",
        "event.source": "registry",
        "event.action": "delete",
        "event.category": ["api"],
        "event.type": ["deletion"],
        "event.outcome": "success",
        "user.name": "mallory",
        "source.ip": "198.51.100.23",
        "user_agent.original": "regctl/v0.7.1 (linux/amd64)",
        "resource.name": MANIFEST,
        "image.name": "payments/api",
        "image.digest": MANIFEST,
        "raw": None,
    }
    assert by_digest.resource_kind is None  # a digest delete does not say manifest or blob
    assert (by_tag.resource_kind, by_tag.resource_name) == ("tag", "v1.4.2")
    assert by_tag.image_digest is None and by_tag.image_name == "payments/api"


def test_repository_delete_names_the_repository() -> None:
    [record] = events_of("distribution-delete.json")[:1]
    record = {**record, "target": {"repository": "payments/api"}}
    event = NORMALIZER.normalize(record)
    assert (event.resource_kind, event.resource_name) == ("repository", "payments/api")


def test_cross_repository_mount() -> None:
    [record] = events_of("distribution-mount.json")
    event = NORMALIZER.normalize(record)
    assert event.timestamp == datetime(2025, 4, 16, 2, 47, 30, 814022, tzinfo=UTC)
    assert (event.event_action, event.event_category, event.event_type) == (
        "mount",
        ["api"],
        ["creation"],
    )
    assert (event.resource_kind, event.image_name) == ("blob", "payments/api")
    assert event.source_ip == "203.0.113.50"


@pytest.mark.parametrize(
    ("addr", "ip"),
    [
        ("192.168.64.11:42961", "192.168.64.11"),
        ("[::1]:5000", "::1"),
        ("[2001:db8::5]:443", "2001:db8::5"),
        ("10.0.0.7", "10.0.0.7"),
        ("2001:db8::9", "2001:db8::9"),
        ("registry-client.internal:5000", None),
        ("", None),
        (42, None),
        (None, None),
    ],
)
def test_source_ip_drops_the_port_and_rejects_host_names(addr: Any, ip: str | None) -> None:
    [record] = events_of("distribution-pull.json")
    record = {**record, "request": {**record["request"], "addr": addr}}
    assert NORMALIZER.normalize(record).source_ip == ip


def test_robot_account_is_a_service_account() -> None:
    [record] = events_of("distribution-pull.json")
    event = NORMALIZER.normalize({**record, "actor": {"name": "robot$payments+deployer"}})
    assert event.user_type == "service_account"


@pytest.mark.parametrize(
    ("timestamp", "reason"),
    [
        (None, "Distribution event without `timestamp`"),
        ("yesterday", "bad timestamp: not an ISO 8601 time: 'yesterday'"),
        ("2016-03-09T14:44:26.402973972", "bad timestamp: time has no zone"),
        (1457563466, "bad timestamp: expected an ISO 8601 string, got int"),
        ("9999-12-31T23:59:59.5-08:00", "bad timestamp: "),
    ],
)
def test_bad_distribution_time_is_an_error_with_reason(timestamp: Any, reason: str) -> None:
    [record] = events_of("distribution-pull.json")
    with pytest.raises(NormalizationError) as caught:
        NORMALIZER.normalize({**record, "timestamp": timestamp})
    assert str(caught.value).startswith(reason)


# Harbor ---------------------------------------------------------------------------


def test_verbatim_harbor_push() -> None:
    record = load("harbor-push.json")
    assert NORMALIZER.matches(record)
    assert NORMALIZER.unwrap(record) is None
    event = NORMALIZER.normalize(record)
    assert event.to_dict() == {
        "@timestamp": "2020-04-15T03:45:08.000000Z",
        "event.id": content_id(record),
        "event.source": "registry",
        "event.action": "push",
        "event.category": ["api"],
        "event.type": ["creation"],
        "event.outcome": "success",
        "user.name": "admin",
        "resource.kind": "manifest",
        "resource.name": "latest",
        "image.name": "test-webhook/debian",
        "image.digest": "sha256:8a9e9863dbb6e10edb5adfe917c00da84e1700fa76e7ed02476aa6e6fb8ee0d8",
        "raw": record,
    }


def test_harbor_pull_by_robot_account() -> None:
    event = NORMALIZER.normalize(load("harbor-pull-robot.json"))
    assert event.timestamp == datetime(2025, 4, 16, 2, 48, 21, tzinfo=UTC)
    assert (event.event_action, event.event_type) == ("pull", ["access"])
    assert (event.user_name, event.user_type) == ("robot$payments+deployer", "service_account")
    assert (event.image_name, event.resource_name) == ("payments/api", "v1.4.2")
    assert event.source_ip is None and event.user_agent is None


def test_harbor_delete_uses_the_distribution_vocabulary() -> None:
    event = NORMALIZER.normalize(load("harbor-delete.json"))
    assert (event.event_action, event.event_category, event.event_type) == (
        "delete",
        ["api"],
        ["deletion"],
    )
    assert (event.resource_kind, event.resource_name) == ("manifest", "v1.4.1")
    assert event.user_name == "mallory"


def test_harbor_record_with_several_artifacts_names_none_of_them() -> None:
    record = load("harbor-delete.json")
    [resource] = record["event_data"]["resources"]
    second = {**resource, "digest": MANIFEST, "tag": "v1.4.2"}
    record["event_data"]["resources"] = [resource, second]
    event = NORMALIZER.normalize(record)
    assert (event.image_digest, event.resource_name) == (None, None)
    assert event.image_name == "payments/api"


def test_harbor_untagged_artifact_is_named_by_digest() -> None:
    record = load("harbor-delete.json")
    record["event_data"]["resources"][0]["tag"] = ""
    event = NORMALIZER.normalize(record)
    assert (
        event.resource_name == event.image_digest == record["event_data"]["resources"][0]["digest"]
    )


@pytest.mark.parametrize(
    ("kind", "action", "category", "outcome", "resource"),
    [
        ("UPLOAD_CHART", "push", ["api"], "success", "chart"),
        ("DOWNLOAD_CHART", "pull", ["api"], "success", "chart"),
        ("SCANNING_COMPLETED", "scanning_completed", ["vulnerability"], "success", "manifest"),
        ("SCANNING_FAILED", "scanning_failed", ["vulnerability"], "failure", "manifest"),
        ("QUOTA_EXCEED", "quota_exceed", None, None, None),
        ("TAG_RETENTION", "tag_retention", None, None, None),
    ],
)
def test_other_harbor_types(
    kind: str, action: str, category: list[str] | None, outcome: str | None, resource: str | None
) -> None:
    event = NORMALIZER.normalize(harbor(type=kind))
    assert (event.event_action, event.event_category) == (action, category)
    assert (event.event_outcome, event.resource_kind) == (outcome, resource)


@pytest.mark.parametrize(
    ("occur_at", "reason"),
    [
        (None, "Harbor webhook without `occur_at`"),
        ("1586922308", "bad occur_at: expected an epoch number, got str"),
        (True, "bad occur_at: expected an epoch number, got bool"),
        (10**20, "bad occur_at: epoch value out of range"),
    ],
)
def test_bad_harbor_time_is_an_error_with_reason(occur_at: Any, reason: str) -> None:
    with pytest.raises(NormalizationError) as caught:
        NORMALIZER.normalize(harbor(occur_at=occur_at))
    assert str(caught.value).startswith(reason)


def test_a_record_of_neither_vendor_is_an_error() -> None:
    with pytest.raises(NormalizationError, match="neither a Distribution"):
        NORMALIZER.normalize({"action": "push", "target": "payments/api"})


# Envelopes and detection ------------------------------------------------------------

GITHUB_AUDIT = {
    "@timestamp": 1741611463961,
    "_document_id": "Nm4EoecTsz6kAS-87bAEfA",
    "action": "repo.create",
    "actor": "user_actor",
    "org": "user-delete",
    "repo": "user-delete/private-repo",
}
GITHUB_WORKFLOW_JOB = {
    "action": "completed",
    "workflow_job": {"id": 289782451, "status": "completed"},
    "repository": {"full_name": "octo-org/octo-repo"},
    "sender": {"login": "octocat"},
}
GITHUB_PACKAGE_WEBHOOK = {
    "action": "published",
    "registry_package": {"name": "api", "package_type": "CONTAINER"},
    "repository": {"full_name": "octo-org/octo-repo"},
    "sender": {"login": "octocat"},
}
HARBOR_CLOUDEVENT = {
    "specversion": "1.0",
    "id": "4b2f89a6-548d-4c12-9993-a1f5790b97d2",
    "source": "/projects/1/webhook/policies/3",
    "type": "harbor.artifact.pushed",
    "time": "2023-03-06T06:08:43Z",
    "data": {"repository": {"name": "debian"}},
}
S3_NOTIFICATION = {
    "eventVersion": "2.1",
    "eventSource": "aws:s3",
    "eventTime": "2025-04-16T02:46:56.000Z",
    "eventName": "ObjectCreated:Put",
    "s3": {"object": {"key": "build.tar"}},
}


@pytest.mark.parametrize(
    "record",
    [
        GITHUB_AUDIT,
        {**GITHUB_AUDIT, "action": "push"},
        GITHUB_WORKFLOW_JOB,
        GITHUB_PACKAGE_WEBHOOK,
        HARBOR_CLOUDEVENT,
        S3_NOTIFICATION,
        {"action": "push", "target": "payments/api", "timestamp": "2025-04-16T02:46:56Z"},
        {"action": ["push"], "target": {}, "timestamp": "2025-04-16T02:46:56Z"},
        {"type": "PUSH_ARTIFACT", "occur_at": 1586922308, "event_data": "x"},
        {"events": []},
    ],
)
def test_records_of_other_shapes_are_not_claimed(record: dict[str, Any]) -> None:
    assert NORMALIZER.matches(record) is False


@pytest.mark.parametrize(
    "document",
    [
        {"events": [GITHUB_AUDIT]},
        {"events": "push"},
        {"events": []},
        {"events": [load("distribution-pull.json")["events"][0]], "next": "cursor"},
        {"Records": [S3_NOTIFICATION]},
        {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": []},
        load("harbor-push.json"),
    ],
)
def test_only_a_distribution_envelope_is_unwrapped(document: dict[str, Any]) -> None:
    assert NORMALIZER.unwrap(document) is None


def test_envelope_keeps_every_event_for_the_stage_to_judge() -> None:
    [pulled] = load("distribution-pull.json")["events"]
    events = NORMALIZER.unwrap({"events": [pulled, {"action": "ping"}, 3]})
    assert events == [pulled, {"action": "ping"}, 3]


def sources_found(path: Path) -> list[str | None]:
    """The source the whole pipeline (every built-in normalizer) gives each record."""
    stage = NormalizeStage(build_registry(SourcesSettings()))
    results = (result for raw in read_paths([str(path)]) for result in stage.process(raw))
    return [r.event_source if isinstance(r, Event) else r.source for r in results]


def test_every_fixture_record_is_detected_as_registry() -> None:
    assert sources_found(REGISTRY) == ["registry"] * 9


def test_no_other_source_fixture_is_claimed_by_registry() -> None:
    others = [path for path in FIXTURES.iterdir() if path.is_dir() and path != REGISTRY]
    found = [source for path in others for source in sources_found(path)]
    assert len(found) > 20
    assert "registry" not in found


# Properties -------------------------------------------------------------------------

TIMESTAMPS = st.sampled_from(
    ["2016-03-09T14:44:26.402973972-08:00", "2025-04-16T02:46:56Z", "2025-04-16"]
)
DISTRIBUTION_LIKE = st.fixed_dictionaries(
    {
        "action": st.sampled_from(["push", "pull", "mount", "delete"]) | JSON_VALUES,
        "target": st.dictionaries(
            st.sampled_from(["mediaType", "digest", "repository", "tag", "url"]), JSON_VALUES
        )
        | JSON_VALUES,
        "timestamp": TIMESTAMPS | JSON_VALUES,
    },
    optional={"id": JSON_VALUES, "request": JSON_VALUES, "actor": JSON_VALUES},
)
HARBOR_LIKE = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["PUSH_ARTIFACT", "QUOTA_EXCEED", ""]) | JSON_VALUES,
        "occur_at": st.integers(min_value=0, max_value=4_000_000_000) | JSON_VALUES,
        "event_data": st.fixed_dictionaries(
            {}, optional={"resources": JSON_VALUES, "repository": JSON_VALUES}
        )
        | JSON_VALUES,
    },
    optional={"operator": JSON_VALUES},
)
RECORDS = (
    st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=6)
    | st.builds(
        lambda extra, base: {**extra, **base},
        st.dictionaries(st.text(), JSON_VALUES, max_size=3),
        DISTRIBUTION_LIKE,
    )
    | st.builds(
        lambda extra, base: {**extra, **base},
        st.dictionaries(st.text(), JSON_VALUES, max_size=3),
        HARBOR_LIKE,
    )
)


@given(RECORDS)
def test_any_record_is_matched_to_a_bool_and_normalized_or_refused(record: dict[str, Any]) -> None:
    claimed = NORMALIZER.matches(record)
    assert isinstance(claimed, bool)
    try:
        event = NORMALIZER.normalize(record)
    except NormalizationError as exc:
        assert str(exc)
        return
    assert claimed
    assert event.event_source == "registry" and event.raw is record
    assert orjson.loads(event.to_json())["event.id"] == event.event_id


@given(
    st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3)
    | st.builds(
        lambda events: {"events": events}, st.lists(DISTRIBUTION_LIKE | JSON_VALUES, max_size=3)
    )
)
def test_unwrap_of_any_document_is_none_or_its_events(document: dict[str, Any]) -> None:
    events = NORMALIZER.unwrap(document)
    assert events is None or events is document["events"]
