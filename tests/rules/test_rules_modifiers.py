"""Every value modifier of the Sigma modifiers appendix v2.1, with exact matches."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule

from detector.rules import CompiledRule, RuleCompileError, compile_rule

Compile = Callable[..., CompiledRule]


def test_plain_string_is_case_insensitive_whole_value(detection: Compile) -> None:
    rule = detection("""
        sel:
            action: 'repo.create'
        condition: sel
    """)
    assert rule.matches({"action": "repo.create"})
    assert rule.matches({"action": "REPO.Create"})
    assert not rule.matches({"action": "repo.created"})
    assert not rule.matches({"action": "xrepo.create"})
    assert not rule.matches({})


def test_contains_startswith_endswith(detection: Compile) -> None:
    contains = detection("{sel: {f|contains: 'Evil'}, condition: sel}")
    startswith = detection("{sel: {f|startswith: 'Evil'}, condition: sel}")
    endswith = detection("{sel: {f|endswith: 'Evil'}, condition: sel}")
    assert [contains.matches({"f": v}) for v in ("an evil x", "EVIL", "ev il")] == [
        True,
        True,
        False,
    ]
    assert [startswith.matches({"f": v}) for v in ("evil x", "x evil", "EVIL")] == [
        True,
        False,
        True,
    ]
    assert [endswith.matches({"f": v}) for v in ("x evil", "evil x", "EviL")] == [
        True,
        False,
        True,
    ]


def test_value_list_is_or_and_all_is_and(detection: Compile) -> None:
    any_rule = detection("{sel: {f|contains: [alpha, beta]}, condition: sel}")
    all_rule = detection("{sel: {f|contains|all: [alpha, beta]}, condition: sel}")
    assert any_rule.matches({"f": "x beta"})
    assert not any_rule.matches({"f": "gamma"})
    assert all_rule.matches({"f": "beta and alpha"})
    assert not all_rule.matches({"f": "only alpha"})


def test_all_on_list_field_needs_each_value_in_some_element(
    detection: Compile,
) -> None:
    rule = detection("{sel: {scopes|all: [repo, admin:org]}, condition: sel}")
    assert rule.matches({"scopes": ["admin:org", "user", "repo"]})
    assert not rule.matches({"scopes": ["repo", "user"]})
    assert rule.matches({"scopes": [["repo"], ["admin:org"]]})


def test_list_field_matches_by_any_element(detection: Compile) -> None:
    rule = detection("{sel: {event.category: iam}, condition: sel}")
    assert rule.matches({"event.category": ["configuration", "IAM"]})
    assert not rule.matches({"event.category": ["configuration"]})
    assert not rule.matches({"event.category": []})


def test_cased(detection: Compile) -> None:
    rule = detection("{sel: {f|cased: Admin}, condition: sel}")
    contains = detection("{sel: {f|contains|cased: Admin}, condition: sel}")
    assert rule.matches({"f": "Admin"})
    assert not rule.matches({"f": "admin"})
    assert contains.matches({"f": "the Admin user"})
    assert not contains.matches({"f": "the ADMIN user"})


def test_exists(detection: Compile) -> None:
    present = detection("{sel: {token.id|exists: true}, condition: sel}")
    absent = detection("{sel: {token.id|exists: false}, condition: sel}")
    for record, exists in (
        ({"token.id": "t1"}, True),
        ({"token.id": None}, True),  # presence only, whatever the value
        ({"token.id": ""}, True),
        ({"token": {"id": 5}}, True),
        ({"token": {}}, False),
        ({}, False),
    ):
        assert present.matches(record) is exists
        assert absent.matches(record) is not exists


def test_null_and_empty_string_differ(detection: Compile) -> None:
    null = detection("{sel: {f: null}, condition: sel}")
    empty = detection("{sel: {f: ''}, condition: sel}")
    assert null.matches({})
    assert null.matches({"f": None})
    assert null.matches({"f": []})
    assert not null.matches({"f": ""})
    assert not null.matches({"f": "x"})
    assert empty.matches({"f": ""})
    assert not empty.matches({})
    assert not empty.matches({"f": None})
    assert not empty.matches({"f": " "})


def test_neq_negates_the_item(detection: Compile) -> None:
    rule = detection("{sel: {action: push, actor|neq: [bot1, bot2]}, condition: sel}")
    assert rule.matches({"action": "push", "actor": "alice"})
    assert not rule.matches({"action": "push", "actor": "BOT1"})
    assert not rule.matches({"action": "push", "actor": "bot2"})
    # negation of the item: an absent field is different from every value
    assert rule.matches({"action": "push"})
    number = detection("{sel: {code|neq: 200}, condition: sel}")
    assert number.matches({"code": 404})
    assert not number.matches({"code": 200})
    assert not number.matches({"code": "200"})


def test_windash(detection: Compile) -> None:
    rule = detection("{sel: {cmd|windash|contains: ' -force '}, condition: sel}")
    for dash in ("-", "/", "\u2013", "\u2014", "\u2015"):
        assert rule.matches({"cmd": f"tool {dash}force now"})
    assert not rule.matches({"cmd": "tool +force now"})
    assert not rule.matches({"cmd": "tool force now"})


def test_regex_is_searched_case_sensitively_by_default(detection: Compile) -> None:
    rule = detection(r"{sel: {f|re: 'net\s+user'}, condition: sel}")
    assert rule.matches({"f": "cmd /c net   user x"})
    assert not rule.matches({"f": "NET USER"})
    assert not rule.matches({"f": "netuser"})
    anchored = detection(r"{sel: {f|re: '^a.c$'}, condition: sel}")
    assert anchored.matches({"f": "abc"})
    assert not anchored.matches({"f": "xabc"})


def test_regex_flags(detection: Compile) -> None:
    insensitive = detection("{sel: {f|re|i: 'net user'}, condition: sel}")
    multiline = detection("{sel: {f|re|m: '^second$'}, condition: sel}")
    dotall = detection("{sel: {f|re|s: 'a.b'}, condition: sel}")
    assert insensitive.matches({"f": "NET USER"})
    assert multiline.matches({"f": "first\nsecond\nthird"})
    assert not detection("{sel: {f|re: '^second$'}, condition: sel}").matches(
        {"f": "first\nsecond\nthird"}
    )
    assert dotall.matches({"f": "a\nb"})
    assert not detection("{sel: {f|re: 'a.b'}, condition: sel}").matches({"f": "a\nb"})


def test_base64(detection: Compile) -> None:
    rule = detection("{sel: {f|base64: 'secret'}, condition: sel}")
    assert rule.matches({"f": base64.b64encode(b"secret").decode()})
    assert not rule.matches({"f": "secret"})


def test_base64offset_finds_the_value_at_every_offset(detection: Compile) -> None:
    rule = detection("{sel: {f|base64offset|contains: 'http://'}, condition: sel}")
    for prefix in (b"", b"x", b"xy", b"xyz"):
        encoded = base64.b64encode(prefix + b"GET http://evil.example").decode()
        assert rule.matches({"f": encoded}), prefix
    assert not rule.matches({"f": base64.b64encode(b"GET https://evil.example").decode()})


def test_utf16_encodings(detection: Compile) -> None:
    little = detection("{sel: {f|utf16le: cmd}, condition: sel}")
    wide = detection("{sel: {f|wide: cmd}, condition: sel}")
    big = detection("{sel: {f|utf16be: cmd}, condition: sel}")
    bom = detection("{sel: {f|utf16: cmd}, condition: sel}")
    assert little.matches({"f": "c\x00m\x00d\x00"})
    assert wide.matches({"f": "c\x00m\x00d\x00"})
    assert not little.matches({"f": "cmd"})
    assert big.matches({"f": "\x00c\x00m\x00d"})
    assert bom.matches({"f": "\ufeffc\x00m\x00d\x00"})
    encoded = detection("{sel: {f|wide|base64offset|contains: ping}, condition: sel}")
    assert encoded.matches({"f": base64.b64encode("run ping now".encode("utf-16le")).decode()})


@pytest.mark.parametrize(
    ("modifier", "expected"),
    [
        ("lt", [True, False, False]),
        ("lte", [True, True, False]),
        ("gt", [False, False, True]),
        ("gte", [False, True, True]),
    ],
)
def test_numeric_comparisons(detection: Compile, modifier: str, expected: list[bool]) -> None:
    rule = detection(f"{{sel: {{count|{modifier}: 10}}, condition: sel}}")
    assert [rule.matches({"count": n}) for n in (9, 10, 11)] == expected
    # numeric text compares as a number; other text, booleans and absence never match
    assert [rule.matches({"count": s}) for s in ("9", "10", "11.5")] == expected
    assert not rule.matches({"count": "ten"})
    assert not rule.matches({"count": True})
    assert not rule.matches({})


def test_numbers_and_strings_match_each_other(detection: Compile) -> None:
    number = detection("{sel: {code: 200}, condition: sel}")
    text = detection("{sel: {code: '200'}, condition: sel}")
    for rule in (number, text):
        assert rule.matches({"code": 200})
        assert rule.matches({"code": "200"})
        assert not rule.matches({"code": 201})
        assert not rule.matches({"code": "2000"})
    assert number.matches({"code": 200.0})
    assert number.matches({"code": "200.0"})
    wildcard = detection("{sel: {code: '20*'}, condition: sel}")
    assert wildcard.matches({"code": 204})


def test_booleans(detection: Compile) -> None:
    rule = detection("{sel: {privileged: true}, condition: sel}")
    assert rule.matches({"privileged": True})
    assert rule.matches({"privileged": "True"})
    assert not rule.matches({"privileged": False})
    assert not rule.matches({"privileged": 1})
    text = detection("{sel: {privileged: 'true'}, condition: sel}")
    assert text.matches({"privileged": True})


@pytest.mark.parametrize(
    ("modifier", "value", "other"),
    [
        ("minute", 7, 8),
        ("hour", 23, 22),
        ("day", 15, 16),
        ("week", 24, 25),  # ISO week of 2024-06-15
        ("month", 6, 7),
        ("year", 2024, 2025),
    ],
)
def test_time_modifiers_extract_a_part_of_the_timestamp(
    detection: Compile, modifier: str, value: int, other: int
) -> None:
    rule = detection(f"{{sel: {{'@timestamp|{modifier}': {value}}}, condition: sel}}")
    mismatch = detection(f"{{sel: {{'@timestamp|{modifier}': {other}}}, condition: sel}}")
    record = {"@timestamp": "2024-06-15T23:07:09.000001Z"}
    assert rule.matches(record)
    assert not mismatch.matches(record)
    assert rule.matches({"@timestamp": 1718492829})  # the same instant as epoch seconds
    assert not rule.matches({"@timestamp": "not a time"})
    assert not rule.matches({})


def test_time_modifiers_read_offsets_as_utc(detection: Compile) -> None:
    rule = detection("{sel: {'ts|hour': 4}, condition: sel}")
    assert rule.matches({"ts": "2024-06-15T23:30:00-05:00"})
    assert not rule.matches({"ts": "2024-06-15T23:30:00Z"})


def test_time_modifier_combines_with_comparison(detection: Compile) -> None:
    rule = detection("{sel: {'ts|hour|gte': 22}, condition: sel}")
    assert rule.matches({"ts": "2024-06-15T22:00:00Z"})
    assert not rule.matches({"ts": "2024-06-15T21:59:59Z"})


def test_cidr_ipv4_and_ipv6(detection: Compile) -> None:
    rule = detection("{sel: {source.ip|cidr: [10.0.0.0/8, '2001:db8::/32']}, condition: sel}")
    assert rule.matches({"source.ip": "10.200.3.4"})
    assert rule.matches({"source.ip": "2001:db8:1::7"})
    assert rule.matches({"source.ip": "::ffff:10.1.1.1"})  # IPv4-mapped
    assert not rule.matches({"source.ip": "11.0.0.1"})
    assert not rule.matches({"source.ip": "2001:db9::1"})
    assert not rule.matches({"source.ip": "not an address"})
    assert not rule.matches({"source.ip": 167772161})


def test_expand_resolves_configured_placeholders(detection: Compile) -> None:
    text = "{sel: {user.name|expand: '%Administrators%'}, condition: sel}"
    rule = detection(text, {"Administrators": ["root", "adm_*"]})
    assert rule.matches({"user.name": "ROOT"})
    assert rule.matches({"user.name": "adm_alice"})
    assert not rule.matches({"user.name": "alice"})
    with pytest.raises(RuleCompileError, match=r"placeholder %Administrators% has no"):
        detection(text)


def test_expand_inside_a_larger_value_and_escaped_percent(detection: Compile) -> None:
    rule = detection(
        r"{sel: {f|expand: '\%plain%host%.corp'}, condition: sel}", {"host": ["a", "b"]}
    )
    assert rule.matches({"f": "%plainb.corp"})
    assert not rule.matches({"f": "%plain%host%.corp"})
    literal = detection("{sel: {f: '%host%'}, condition: sel}")
    assert literal.matches({"f": "%HOST%"})


def test_fieldref(detection: Compile) -> None:
    rule = detection("{sel: {user|fieldref: parent.user}, condition: sel}")
    assert rule.matches({"user": "Alice", "parent": {"user": "alice"}})
    assert not rule.matches({"user": "alice", "parent": {"user": "bob"}})
    assert not rule.matches({"user": "alice"})
    assert not rule.matches({"parent": {"user": "alice"}})
    assert rule.fields == frozenset({"user", "parent.user"})


def test_fieldref_with_position_and_negation(detection: Compile) -> None:
    record = {"repo": "acme/widgets-fork", "base": "acme/widgets"}
    starts = detection("{sel: {repo|fieldref|startswith: base}, condition: sel}")
    ends = detection("{sel: {repo|fieldref|endswith: base}, condition: sel}")
    contains = detection("{sel: {repo|fieldref|contains: base}, condition: sel}")
    different = detection("{sel: {repo|fieldref|neq: base}, condition: sel}")
    assert starts.matches(record)
    assert not ends.matches(record)
    assert contains.matches({"repo": "x-acme/widgets-y", "base": "acme/widgets"})
    assert different.matches(record)
    assert not different.matches({"repo": "a", "base": "A"})


def test_modifier_errors_are_rejected(detection: Compile) -> None:
    with pytest.raises(SigmaError):
        detection("{sel: {f|nosuchmodifier: x}, condition: sel}")
    with pytest.raises(SigmaError):
        detection("{sel: {f|cidr: 'not-a-network'}, condition: sel}")
    with pytest.raises(SigmaError):
        detection("{sel: {f|gt: 'text'}, condition: sel}")


def test_expansions_stay_or_groups_inside_all(detection: Compile) -> None:
    rule = detection("{sel: {cmd|windash|contains|all: [' -a ', ' -b ']}, condition: sel}")
    assert rule.matches({"cmd": "x /a -b y"})
    assert rule.matches({"cmd": "x \u2013a /b y"})
    assert not rule.matches({"cmd": "x /a y"})


def test_empty_value_list_is_null(detection: Compile) -> None:
    rule = detection("{sel: {f: []}, condition: sel}")
    assert rule.matches({})
    assert not rule.matches({"f": "x"})


def test_expand_in_a_regular_expression(detection: Compile) -> None:
    rule = detection(
        "{sel: {host|re|expand: '^%servers%[0-9]+$'}, condition: sel}", {"servers": ["web", "db"]}
    )
    assert rule.matches({"host": "db12"})
    assert not rule.matches({"host": "mail1"})


def test_keyword_null_is_a_compile_error(detection: Compile) -> None:
    with pytest.raises(RuleCompileError, match="keyword search cannot use SigmaNull"):
        detection("{keywords: [null], condition: keywords}")


def test_rule_with_parse_errors_is_not_compiled() -> None:
    document = {
        "title": "t",
        "logsource": {"product": "x"},
        "detection": {"sel": {"f|nope": 1}, "condition": "sel"},
    }
    rule = SigmaRule.from_dict(document, collect_errors=True)
    with pytest.raises(RuleCompileError, match="Unknown modifier 'nope'"):
        compile_rule(rule)


def test_base64offset_of_non_ascii_text_uses_byte_offsets(detection: Compile) -> None:
    rule = detection("{sel: {f|base64offset|contains: 'naïve'}, condition: sel}")
    for prefix in (b"", b"a", b"ab"):
        encoded = base64.b64encode(prefix + "naïve".encode() + b"!").decode()
        assert rule.matches({"f": encoded})
    assert not rule.matches({"f": "xyz"})
