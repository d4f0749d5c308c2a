"""The compiled evaluation of a rule agrees with the closures on every modifier and value shape."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from itertools import cycle, islice
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from detector.rules import CompiledRule
from detector.rules.evaluate import REORDER_EVERY, evaluator
from detector.rules.plan import AllOf, Exists, LowerText, Opaque, Plan
from detector.rules.values import TextSpec

Compile = Callable[..., CompiledRule]

FIELDS = ("a", "b.c")
WORD = st.text(st.sampled_from("aAbB*?.x\\"), max_size=6)
PLAIN = st.text(st.sampled_from("aAbBx."), min_size=1, max_size=5)
# modifier chain -> strategy of one value for it
MODIFIERS: dict[str, st.SearchStrategy[Any]] = {
    "": st.one_of(WORD, st.integers(-2, 2), st.booleans(), st.none()),
    "contains": WORD,
    "startswith": WORD,
    "endswith": WORD,
    "contains|all": WORD,
    "cased": PLAIN,
    "contains|cased": PLAIN,
    "re": st.sampled_from(["^a", "b$", "a.b", "(?i)ab", "x+"]),
    "re|i": st.sampled_from(["^a", "B$"]),
    "cidr": st.sampled_from(["10.0.0.0/8", "192.168.1.0/24", "::1/128"]),
    "exists": st.booleans(),
    "gt": st.integers(-2, 2),
    "gte": st.floats(-2, 2, allow_nan=False),
    "lt": st.integers(-2, 2),
    "lte": st.integers(-2, 2),
    "neq": PLAIN,
    "windash": st.sampled_from(["-a", "/b"]),
    "base64": PLAIN,
    "base64offset|contains": PLAIN,
    "utf16le|base64offset|contains": PLAIN,
    "fieldref": st.sampled_from(FIELDS),
    "startswith|fieldref": st.sampled_from(FIELDS),
}
TEXT = st.one_of(
    st.text(st.sampled_from("aAbBx.-/"), max_size=5),
    st.sampled_from(["10.1.2.3", "192.168.1.7", "::1", "YWJ", "-a", "1", "2.0"]),
)
SCALAR = st.one_of(
    TEXT,
    st.integers(-3, 3),
    st.floats(-3, 3, allow_nan=False),
    st.booleans(),
    st.none(),
)
#: lists of strings on their own: the evaluator tests them without the closure
VALUE = st.one_of(SCALAR, st.lists(SCALAR, max_size=3), st.lists(TEXT, max_size=3))
CONDITIONS = [
    "s0",
    "s0 and s1",
    "s0 or s1",
    "s0 and not s1",
    "not s0",
    "1 of s*",
    "all of s*",
    "s0 and (s1 or not s2)",
    "not s1 and s0",
    "not (s0 or s1) and s2",
    "not (s0 and s1) and s2",
    "s0 and not (s1 and s2) and not s2",
]


@st.composite
def items(draw: st.DrawFn) -> tuple[str, Any]:
    modifiers = draw(st.sampled_from(sorted(MODIFIERS)))
    key = draw(st.sampled_from(FIELDS)) + (f"|{modifiers}" if modifiers else "")
    values = MODIFIERS[modifiers]
    if modifiers == "exists":
        return key, draw(values)
    return key, draw(st.one_of(values, st.lists(values, min_size=1, max_size=3)))


@st.composite
def detections(draw: st.DrawFn) -> dict[str, Any]:
    detection: dict[str, Any] = {}
    for index in range(3):
        detection[f"s{index}"] = dict(draw(st.lists(items(), min_size=1, max_size=3)))
    detection["condition"] = draw(st.sampled_from(CONDITIONS))
    return detection


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    record: dict[str, Any] = {}
    if draw(st.booleans()):
        record["a"] = draw(VALUE)
    shape = draw(st.sampled_from(["nested", "flat", "absent"]))
    if shape == "nested":
        record["b"] = {"c": draw(VALUE)}
    elif shape == "flat":
        record["b.c"] = draw(VALUE)
    return record


def assert_agrees(
    detection_dict: Compile, detection: dict[str, Any], records: Iterable[dict[str, Any]]
) -> None:
    """The compiled evaluation of `detection` gives the closures' answer on each record."""
    try:
        rule = detection_dict(detection)
    except Exception:  # a combination pySigma refuses (base64 of a wildcard...)
        return
    for record in records:
        assert rule.matches(record) is rule.condition(record), (detection, record)


@settings(max_examples=1000, deadline=None)
@given(detections(), st.lists(records(), min_size=1, max_size=5))
def test_evaluation_equals_the_closures(
    detection_dict: Compile, detection: dict[str, Any], batch: list[dict[str, Any]]
) -> None:
    assert_agrees(detection_dict, detection, batch)


@settings(max_examples=60, deadline=None)
@given(detections(), st.lists(records(), min_size=1, max_size=5))
def test_evaluation_equals_the_closures_after_its_tests_are_reordered(
    detection_dict: Compile, detection: dict[str, Any], batch: list[dict[str, Any]]
) -> None:
    assert_agrees(detection_dict, detection, islice(cycle(batch), 3 * REORDER_EVERY))


def test_an_and_tries_the_test_that_fails_most_often_first() -> None:
    calls: Counter[str] = Counter()

    def counted(name: str, test: Callable[[dict[str, Any]], bool]) -> Opaque:
        def predicate(record: Any) -> bool:
            calls[name] += 1
            return test(record)

        return Opaque(predicate)

    system = counted("system identity", lambda record: record["user"].startswith("system:"))
    public = counted("public address", lambda record: record["ip"] == "203.0.113.9")
    test = evaluator(AllOf((system, public), lambda record: False))
    controller = {"user": "system:node:a", "ip": "10.0.0.7"}
    stolen = {"user": "system:node:a", "ip": "203.0.113.9"}
    person = {"user": "alice", "ip": "203.0.113.9"}
    for _ in range(REORDER_EVERY):
        assert test.holds(controller) is False
    calls.clear()
    assert [test.holds(record) for record in (controller, stolen, person)] == [False, True, False]
    # the address test now goes first: the identity is read only where the address passed
    assert calls == {"public address": 3, "system identity": 2}


def test_strings_are_tested_natively_and_the_rest_by_closures(detection_dict: Compile) -> None:
    rule = detection_dict(
        {
            "sel": {"a|startswith": ["x", "Y"], "b.c|exists": True},
            "num": {"a|gt": 1},
            "condition": "sel or num",
        }
    )
    assert rule.matches is not rule.condition
    assert rule.matches({"a": "yes", "b": {"c": None}}) is True
    assert rule.matches({"a": "yes"}) is False
    assert rule.matches({"a": 3}) is True
    assert rule.matches({"a": ["no", "Xy"], "b.c": 1}) is True
    assert rule.matches({"a": ["no", "nay"], "b.c": 1}) is False
    assert rule.matches({"a": ["no", ["Xy"]], "b.c": 1}) is True  # nested: the closure
    public = detection_dict(
        {"sel": {"ip|cidr": "10.0.0.0/8", "ua|re": "^kube"}, "condition": "sel"}
    )
    assert public.matches({"ip": ["192.0.2.1", "10.1.2.3"], "ua": "kubelet/1.30"}) is True
    assert public.matches({"ip": ["192.0.2.1"], "ua": "kubelet/1.30"}) is False
    assert public.matches({"ip": "10.1.2.3", "ua": ["curl", "kubectl"]}) is True
    assert public.matches({"ip": "10.1.2.3", "ua": 7}) is False


def test_rule_strings_are_data_not_code() -> None:
    """A value that is valid Python stays a string the record is compared with."""
    hostile = "__import__('os').getcwd() or 1"
    spec = TextSpec(False, frozenset({hostile}), (), (), (), None)
    plan = LowerText("f'x", spec, lambda record: False)
    both: Plan = AllOf((plan, Exists("a", True, lambda r: False)), lambda r: False)
    test = evaluator(both)
    assert test.holds({"f'x": hostile, "a": 1}) is True
    assert test.holds({"f'x": "other", "a": 1}) is False
    assert test.holds({"f'x": hostile}) is False
