"""The normalize stage: decoding, envelopes, detection, dead letters; never raises."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.config import SourcesSettings
from detector.deadletter import DeadLetter
from detector.events import Event
from detector.normalize import NormalizeStage, UnknownSourceError
from detector.normalize.builtin import build_registry
from detector.normalize.declared import DeclaredSource
from detector.sources.records import RawRecord
from tests.strategies import JSON_VALUES as json_values

REGISTRY = build_registry(SourcesSettings())
STAGE = NormalizeStage(REGISTRY)

K8S_EVENT = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "Metadata",
    "auditID": "a1",
    "stage": "ResponseComplete",
    "requestURI": "/api/v1/namespaces/prod/secrets",
    "verb": "list",
    "user": {"username": "alice"},
    "sourceIPs": ["10.0.0.1"],
    "objectRef": {"resource": "secrets", "namespace": "prod", "apiVersion": "v1"},
    "responseStatus": {"metadata": {}, "code": 200},
    "requestReceivedTimestamp": "2025-05-02T08:15:30.104211Z",
    "stageTimestamp": "2025-05-02T08:15:30.106877Z",
}


def run(data: bytes, source: str | None = None) -> list[Event | DeadLetter]:
    return list(STAGE.process(RawRecord(data, "test:1", source)))


def test_not_json_and_not_a_known_text_line_is_dead_lettered_with_reason() -> None:
    [result] = run(b"hello world")
    assert isinstance(result, DeadLetter)
    assert result.reason.startswith("not JSON")
    assert result.data == b"hello world" and result.origin == "test:1"


def test_unknown_json_object_names_its_keys() -> None:
    [result] = run(b'{"zeta": 1, "alpha": 2}')
    assert isinstance(result, DeadLetter)
    assert result.reason == "unknown source: no normalizer recognises keys alpha, zeta"


def test_json_that_is_not_an_object_is_dead_lettered() -> None:
    [result] = run(b"[1, 2]")
    assert (
        isinstance(result, DeadLetter) and result.reason == "record is a JSON array, not an object"
    )


def test_envelope_items_are_records_with_their_own_origin() -> None:
    second = {**K8S_EVENT, "auditID": "a2"}
    envelope = {
        "kind": "EventList",
        "apiVersion": "audit.k8s.io/v1",
        "items": [K8S_EVENT, second, 7],
    }
    results = run(orjson.dumps(envelope))
    assert [type(r) for r in results] == [Event, Event, DeadLetter]
    assert [r.origin for r in results if isinstance(r, DeadLetter)] == ["test:1#2"]
    assert [r.event_id for r in results if isinstance(r, Event)] == [
        "a1:ResponseComplete",
        "a2:ResponseComplete",
    ]


def test_a_bad_record_of_a_known_source_says_which_source() -> None:
    bad = {**K8S_EVENT, "stageTimestamp": "yesterday", "requestReceivedTimestamp": None}
    [result] = run(orjson.dumps(bad))
    assert isinstance(result, DeadLetter)
    assert result.source == "kubernetes" and result.reason.startswith("kubernetes: ")


def test_reader_errors_become_dead_letters() -> None:
    [result] = STAGE.process(RawRecord(b"", "x.gz", error="unreadable input: truncated"))
    assert isinstance(result, DeadLetter) and result.reason == "unreadable input: truncated"


def test_forced_source_skips_detection() -> None:
    stage = NormalizeStage(REGISTRY, "kubernetes")
    [result] = stage.process(RawRecord(b'{"zeta": 1}', "t"))
    assert isinstance(result, DeadLetter) and result.source == "kubernetes"


def test_unknown_forced_source_is_refused_with_the_known_names() -> None:
    with pytest.raises(UnknownSourceError, match=r"unknown source 'nope'.*kubernetes"):
        NormalizeStage(REGISTRY, "nope")


def test_declared_source_passes_records_through() -> None:
    declared = DeclaredSource(name="bitbucket", time_field="date", id_field="uid")
    registry = build_registry(SourcesSettings(), [declared])
    stage = NormalizeStage(registry, "bitbucket")
    record = {"date": "2025-01-02T03:04:05.123Z", "uid": 42, "auditType": {"action": "x"}}
    [event] = stage.process(RawRecord(orjson.dumps(record), "t"))
    assert isinstance(event, Event)
    assert event.to_dict() == {
        "@timestamp": "2025-01-02T03:04:05.123000Z",
        "event.id": "42",
        "event.source": "bitbucket",
        "raw": record,
    }
    assert registry.get("bitbucket").product == "bitbucket"


# Records shaped like the known sources, with arbitrary values under their keys.
signature_keys = st.sampled_from(
    [
        "kind", "apiVersion", "auditID", "stage", "verb", "action", "_document_id", "actor",
        "@timestamp", "created_at", "event_type", "author_id", "entity_type", "workflow_run",
        "workflow_job", "repository", "events", "target", "timestamp", "type", "occur_at",
        "event_data", "Records", "eventTime", "eventSource", "eventName", "message", "items",
    ]
)  # fmt: skip
lookalikes = st.dictionaries(signature_keys, json_values, max_size=10)


@settings(max_examples=400, deadline=None)
@given(record=st.one_of(json_values, lookalikes))
def test_arbitrary_json_is_normalized_or_dead_lettered(record: Any) -> None:
    data = orjson.dumps(record)
    results = run(data)
    if not results:  # only an envelope with no records inside gives nothing
        assert isinstance(record, dict)
        assert any(n.unwrap(record) == [] for n in REGISTRY.detected)
    for result in results:
        assert isinstance(result, Event | DeadLetter)
        if isinstance(result, Event):
            orjson.loads(result.to_json())
        else:
            assert result.reason


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_are_normalized_or_dead_lettered(data: bytes) -> None:
    results = run(data)
    assert results and all(isinstance(r, Event | DeadLetter) for r in results)


# Records of every kind a batch can mix: events, envelopes, text lines, bad JSON, reader
# errors, records of no source.
batch_records = st.one_of(
    st.sampled_from(
        [
            RawRecord(orjson.dumps(K8S_EVENT), "k:1"),
            RawRecord(orjson.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1",
                                    "items": [K8S_EVENT, {"verb": 1}]}), "k:2"),
            RawRecord(b"{not json", "b:1"),
            RawRecord(b"", "e:1", None, "file could not be read"),
            RawRecord(b"Mar 4, 2025 6:26:00,000 AM A groovy script was executed by user "
                      b"'mallory'. Origin: Script Console Controller.", "j:1"),
        ]
    ),
    st.builds(lambda record: RawRecord(orjson.dumps(record), "x:1"),
              st.one_of(json_values, lookalikes)),
    st.builds(lambda data: RawRecord(data, "y:1"), st.binary(max_size=60)),
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(raws=st.lists(batch_records, max_size=12))
def test_a_batch_gives_what_each_of_its_records_gives_in_order(raws: list[RawRecord]) -> None:
    alone = [result for raw in raws for result in STAGE.process(raw)]
    assert list(STAGE.process_batch(raws)) == alone


def test_continuation_lines_join_the_text_record_before_them() -> None:
    lines = [
        b"Mar 4, 2025 6:26:00,000 AM A groovy script was executed by user 'mallory'. "
        b"Origin: Script Console Controller.",
        b"println 'id'.execute().text",
        b'{"zeta": 1}',
        b"orphan line",
    ]
    records = [RawRecord(line, f"a.log:{n}") for n, line in enumerate(lines, start=1)]
    joined = list(STAGE.join_continuation_lines(records))
    assert [r.origin for r in joined] == ["a.log:1", "a.log:3", "a.log:4"]
    assert joined[0].data == lines[0] + b"\n" + lines[1]
    [event] = STAGE.process(joined[0])
    assert isinstance(event, Event) and event.event_action == "script.executed"
