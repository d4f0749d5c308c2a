"""The rule index against checking every rule: random rules of every value type and
modifier, random records, the same matches in the same order."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sigma.rule import SigmaRule

from detector.config import SourcesSettings
from detector.events import Event
from detector.normalize.builtin import build_registry
from detector.rules import CompiledRule, compile_rule
from detector.rules.requirements import NUMBER, PRESENT, SPEC, TEXT, requirement
from detector.rules.routing import RuleRouter
from detector.rules.values import TextSpec

ROUTES = build_registry(SourcesSettings()).routes()
WHEN = datetime(2025, 1, 1, tzinfo=UTC)
FIELDS = ["verb", "code", "user.name", "tags"]
WORDS = ["get", "GET", "create", "a*", "*e", "sys:x", "401", "", "true"]
NUMBERS = [401, 403, 200, 0]
MODIFIERS = ["", "|contains", "|startswith", "|endswith", "|cased", "|re", "|all", "|lt", "|neq"]

values = st.one_of(st.sampled_from(WORDS), st.sampled_from(NUMBERS), st.booleans(), st.none())


def compiled(detection: dict[str, Any], product: str = "kubernetes") -> CompiledRule:
    """A rule of `product`'s logsource with `detection`."""
    document = {"title": "r", "logsource": {"product": product}, "detection": detection}
    return compile_rule(SigmaRule.from_dict(document))


@st.composite
def items(draw: st.DrawFn) -> tuple[str, Any]:
    name = draw(st.sampled_from(FIELDS))
    modifier = draw(st.sampled_from(MODIFIERS))
    if draw(st.integers(0, 9)) == 0:
        return f"{name}|exists", draw(st.booleans())
    if modifier == "|lt":
        return name + modifier, draw(st.sampled_from(NUMBERS))
    if modifier in ("|re",):
        return name + modifier, draw(st.sampled_from(["^sys", "e$", "4.1"]))
    if modifier in ("|contains", "|startswith", "|endswith", "|cased"):
        return name + modifier, draw(st.sampled_from([w for w in WORDS if w]))
    words = st.lists(st.sampled_from(WORDS), min_size=2, max_size=3)  # patterns beside plain
    chosen = draw(st.one_of(st.lists(values, min_size=1, max_size=3), words))
    if modifier == "|all":
        return name + modifier, [v for v in chosen if isinstance(v, str)] or ["x", "y"]
    if modifier == "|neq":
        return name + modifier, chosen[0] if chosen[0] is not None else "x"
    return name, chosen if len(chosen) > 1 else chosen[0]


@st.composite
def selection_maps(draw: st.DrawFn) -> dict[str, Any]:
    """A map: the AND of its items."""
    return dict(draw(st.lists(items(), min_size=1, max_size=2, unique_by=lambda i: i[0])))


#: a map, or a list of maps (their OR)
selections = st.one_of(selection_maps(), st.lists(selection_maps(), min_size=2, max_size=2))


CONDITIONS = [
    "sel_a",
    "sel_a and sel_b",
    "sel_a or sel_b",
    "sel_a and not sel_b",
    "not sel_a",
    "1 of sel_*",
    "all of sel_*",
    "(sel_a or sel_b) and sel_c",
    "sel_a or (sel_b and not sel_c)",
]


@st.composite
def rules(draw: st.DrawFn) -> CompiledRule:
    detection: dict[str, Any] = {name: draw(selections) for name in ("sel_a", "sel_b", "sel_c")}
    detection["condition"] = draw(st.sampled_from(CONDITIONS))
    return compiled(detection)


field_values = st.one_of(
    values,
    st.lists(values, max_size=3),
    st.sampled_from([*WORDS, "sys:admin", "GeT", "4011", "Create", "abc", "the"]),
    # a rule's word inside other text, where wildcards and substrings meet it
    st.tuples(st.sampled_from(WORDS), st.sampled_from(["", "x", "E"])).map(
        lambda t: t[1] + t[0].replace("*", "") + t[1]
    ),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: round(f)),
    st.just(401.0),
)


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for name in FIELDS:
        if draw(st.booleans()):
            continue
        value = draw(field_values)
        if "." in name and draw(st.booleans()):
            outer, inner = name.split(".")
            record[outer] = {inner: value} if draw(st.integers(0, 3)) else [{inner: value}]
        else:
            record[name] = value
    return record


@settings(max_examples=400, deadline=None)
@given(st.lists(rules(), min_size=1, max_size=6), st.lists(records(), min_size=1, max_size=8))
def test_the_index_gives_what_checking_every_rule_gives(
    rule_list: list[CompiledRule], record_list: list[dict[str, Any]]
) -> None:
    indexed = RuleRouter(rule_list, ROUTES)
    flat = RuleRouter(rule_list, ROUTES, indexed=False)
    for record in record_list:
        event = Event(timestamp=WHEN, event_id="e", event_source="kubernetes", raw=record)
        assert indexed.match(event) == flat.match(event)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(st.sampled_from(WORDS), st.sampled_from(NUMBERS)), min_size=1, max_size=4),
    st.sampled_from(MODIFIERS),
    field_values,
)
def test_one_item_of_any_shape(words: list[Any], modifier: str, value: Any) -> None:
    """Plain words, patterns and numbers mixed in one value list, against values made of
    those words."""
    if modifier == "|lt":
        words = [w for w in words if isinstance(w, int)] or [1]
    elif modifier == "|re":
        words = [str(w).replace("*", ".*") for w in words]
    elif modifier not in ("", "|neq"):
        words = [str(w) for w in words if w != ""] or ["x"]
    rule = compiled({"sel": {"verb" + modifier: words}, "condition": "sel"})
    indexed = RuleRouter([rule], ROUTES)
    flat = RuleRouter([rule], ROUTES, indexed=False)
    event = Event(timestamp=WHEN, event_id="e", event_source="kubernetes", raw={"verb": value})
    assert indexed.match(event) == flat.match(event)


def test_requirements_read_off_the_plan() -> None:
    one_of = compiled(
        {
            "by_type": {"event_type": ["Deploy_Key_Added", "x"]},
            "by_name": {"details.event_name": "deploy_key_added"},
            "condition": "by_type or by_name",
        }
    )
    assert requirement(one_of.detection.plan) == (
        frozenset(
            {
                ("event_type", TEXT, "deploy_key_added"),
                ("event_type", TEXT, "x"),
                ("details.event_name", TEXT, "deploy_key_added"),
            }
        ),
    )
    both = compiled(
        {
            "sel": {"responseStatus.code": [401, 403], "user.username|startswith": "system:"},
            "condition": "sel",
        }
    )
    assert set(requirement(both.detection.plan)) == {
        frozenset({("responseStatus.code", NUMBER, 401), ("responseStatus.code", NUMBER, 403)}),
        frozenset(
            {("user.username", SPEC, TextSpec(False, frozenset(), ("system:",), (), (), None))}
        ),
    }
    # A comparison needs a value, whatever it is
    assert requirement(compiled({"sel": {"code|lt": 400}, "condition": "sel"}).detection.plan) == (
        frozenset({("code", PRESENT, None)}),
    )
    # A negation, a null or a test left to its closure (`|re`) proves nothing: checked
    # against every record.
    assert (
        requirement(compiled({"sel": {"verb": "get"}, "condition": "not sel"}).detection.plan) == ()
    )
    assert requirement(compiled({"sel": {"verb": None}, "condition": "sel"}).detection.plan) == ()
    assert (
        requirement(compiled({"sel": {"verb|re": "^g"}, "condition": "sel"}).detection.plan) == ()
    )


def test_only_the_rules_whose_clauses_a_record_meets_are_checked() -> None:
    forbidden = compiled({"sel": {"responseStatus.code": [401, 403]}, "condition": "sel"})
    impersonating = compiled(
        {"sel": {"impersonatedUser.username|exists": True}, "condition": "sel"}
    )
    anything = compiled({"sel": {"verb": "get"}, "condition": "not sel"})
    router = RuleRouter([forbidden, impersonating, anything], ROUTES)
    index = router.raw["kubernetes"]
    assert index.candidates({"responseStatus": {"code": 200}}) == [anything]
    assert index.candidates({"responseStatus": {"code": "403"}}) == [forbidden, anything]
    assert index.candidates({"impersonatedUser": {"username": None}}) == [impersonating, anything]


def test_a_text_pattern_is_checked_only_against_the_values_it_passes() -> None:
    bypass = compiled(
        {"sel": {"action|contains": "push_protection.bypass"}, "condition": "sel"}, "github"
    )
    router = RuleRouter([bypass], ROUTES)
    index = router.raw["github"]
    assert index.candidates({"action": "git.clone"}) == []
    assert index.candidates({"action": "Secret_Scanning_Push_Protection.Bypass"}) == [bypass]
    assert index.candidates({"action": ["git.clone", "x.push_protection.bypass"]}) == [bypass]
    assert index.candidates({"action": 7}) == []
    assert index.candidates({}) == []


NORMALIZED_FIELDS = ["event.action", "user.type", "event.category", "user.name"]


@st.composite
def normalized_rules(draw: st.DrawFn, fields: list[str]) -> CompiledRule:
    detection: dict[str, Any] = {}
    for name in ("sel_a", "sel_b", "sel_c"):
        entries = draw(st.lists(items(), min_size=1, max_size=2, unique_by=lambda i: i[0]))
        detection[name] = {
            fields[FIELDS.index(key.split("|")[0])] + key[len(key.split("|")[0]) :]: value
            for key, value in entries
        }
    detection["condition"] = draw(st.sampled_from(CONDITIONS))
    return compiled(detection, "cicd")


texts = st.one_of(st.none(), st.sampled_from([*WORDS, "Create", "sys:admin", "abc"]))


@st.composite
def events(draw: st.DrawFn) -> Event:
    return Event(
        timestamp=WHEN,
        event_id="e",
        event_source="github",
        event_action=draw(texts),
        user_type=draw(st.sampled_from([None, "human", "bot", "token"])),
        event_category=draw(st.one_of(st.none(), st.lists(st.sampled_from(WORDS), max_size=2))),
        user_name=draw(texts),
        raw=draw(st.dictionaries(st.just("x"), field_values)),
    )


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([NORMALIZED_FIELDS, ["event.action", "user.type", "@timestamp", "raw.x"]]),
    st.data(),
)
def test_normalized_rules_pick_the_same_from_the_event_as_from_its_record(
    fields: list[str], data: st.DataObject
) -> None:
    """Read from the event's attributes (absent fields are None) or, where a rule reads
    `@timestamp` or a path into `raw`, from its record: the same matches either way."""
    rule_list = data.draw(st.lists(normalized_rules(fields), min_size=1, max_size=5))
    indexed = RuleRouter(rule_list, ROUTES)
    flat = RuleRouter(rule_list, ROUTES, indexed=False)
    index = indexed.normalized["github"]
    if fields == NORMALIZED_FIELDS:
        assert index.reads_attributes or not index.fields
    for event in data.draw(st.lists(events(), min_size=1, max_size=6)):
        assert indexed.match(event) == flat.match(event)


def test_an_empty_text_is_a_value_and_a_null_field_is_absent() -> None:
    empty = compiled({"sel": {"event.action": ""}, "condition": "sel"}, "cicd")
    typed = compiled({"sel": {"user.type|exists": True}, "condition": "sel"}, "cicd")
    router = RuleRouter([empty, typed], ROUTES)
    assert router.normalized["github"].reads_attributes

    def event(**fields: Any) -> Event:
        return Event(timestamp=WHEN, event_id="e", event_source="github", raw={}, **fields)

    assert router.match(event(event_action="")) == [empty]
    assert router.match(event(event_action="x", user_type="bot")) == [typed]
    assert router.match(event(event_action=None, user_type=None)) == []
