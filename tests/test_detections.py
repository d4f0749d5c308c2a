"""Detections as written out: the field-by-field JSON is the validated model's dump,
redacted, for every value a detection can hold; single-event detections built without
validation equal validated ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
from hypothesis import given
from hypothesis import strategies as st

from detector.detections import Detection, Evidence, RuleRef, Window
from detector.events import Event
from detector.redact import redact
from detector.single_event import single_event_detection

GITHUB_TOKEN = "ghp_" + "a" * 36
#: Text with a token now and then, and keys of secrets, so redaction has work to do.
TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from([GITHUB_TOKEN, f"leaked {GITHUB_TOKEN} here", "token", "kind", "Secret"]),
)
TIMES = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)
LEVELS = st.sampled_from([None, "informational", "low", "medium", "high", "critical"])
RULES = st.builds(
    RuleRef, id=TEXT.filter(bool), title=TEXT, level=LEVELS, tags=st.lists(TEXT, max_size=3)
)
EVIDENCE = st.builds(
    Evidence,
    id=TEXT,
    timestamp=TIMES,
    source=TEXT,
    action=st.none() | TEXT,
    actor=st.none() | TEXT,
)
WINDOWS = st.builds(
    lambda start, length: Window(start=start, end=start + length),
    start=TIMES.filter(lambda t: t.year < 9999),
    length=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=7)),
)
DETECTIONS = st.builds(
    Detection,
    id=TEXT,
    timestamp=TIMES,
    rule=RULES,
    group=st.none() | st.dictionaries(st.sampled_from(["user.name", "token", "kind"]), TEXT),
    window=st.none() | WINDOWS,
    evidence=st.lists(EVIDENCE, max_size=3),
    message=TEXT,
)


@given(detection=DETECTIONS)
def test_the_written_json_is_the_redacted_dump_of_the_model(detection: Detection) -> None:
    assert detection.to_json() == orjson.dumps(redact(detection.to_dict()))
    assert GITHUB_TOKEN not in detection.to_json().decode()


@given(rule=RULES, detections=st.lists(DETECTIONS, min_size=2, max_size=4))
def test_detections_of_one_rule_object_each_write_their_redacted_dump(
    rule: RuleRef, detections: list[Detection]
) -> None:
    """The rule's part of the JSON is worked out once per rule object and then reused."""
    for detection in detections:
        of_rule = detection.model_copy(update={"rule": rule})
        assert of_rule.to_json() == orjson.dumps(redact(of_rule.to_dict()))


@given(
    rule=RULES,
    timestamp=TIMES.filter(lambda t: t.year >= 1000),  # what a dump validates back
    event_id=TEXT.filter(bool),
    source=TEXT.filter(bool),
    action=st.none() | TEXT,
    user=st.none() | TEXT,
    repository=st.none() | TEXT,
)
def test_a_single_event_detection_equals_the_validated_model(
    rule: RuleRef,
    timestamp: datetime,
    event_id: str,
    source: str,
    action: str | None,
    user: str | None,
    repository: str | None,
) -> None:
    event = Event(
        timestamp=timestamp,
        event_id=event_id,
        event_source=source,
        event_action=action,
        user_name=user,
        repository=repository,
        raw={},
    )
    built = single_event_detection(rule, event)
    validated = Detection.model_validate(built.model_dump())
    assert built == validated
    assert built.to_dict() == validated.to_dict()
    assert built.to_json() == validated.to_json()
    assert built.evidence == [Evidence.model_validate(built.evidence[0].model_dump())]
