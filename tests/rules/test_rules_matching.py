"""Wildcards, escapes, field paths, value types and keyword searches."""

from __future__ import annotations

from collections.abc import Callable

from detector.rules import CompiledRule

Compile = Callable[..., CompiledRule]


def test_wildcards(detection: Compile) -> None:
    star = detection(r"{sel: {f: 'C:\Windows\\*\cmd.exe'}, condition: sel}")
    assert star.matches({"f": "c:\\windows\\system32\\CMD.EXE"})
    assert star.matches({"f": "C:\\Windows\\\\cmd.exe"})
    assert not star.matches({"f": "C:\\Windows\\cmd.exe"})
    # a single backslash before `*` escapes it: this is a literal star
    escaped = detection(r"{sel: {f: 'C:\Windows\*\cmd.exe'}, condition: sel}")
    assert escaped.matches({"f": "C:\\Windows*\\cmd.exe"})
    assert not escaped.matches({"f": "C:\\Windows\\system32\\cmd.exe"})
    single = detection("{sel: {f: 'prog?.exe'}, condition: sel}")
    assert single.matches({"f": "progA.exe"})
    assert not single.matches({"f": "prog.exe"})
    assert not single.matches({"f": "progAB.exe"})
    anything = detection("{sel: {f: '*'}, condition: sel}")
    assert anything.matches({"f": ""})
    assert anything.matches({"f": 3})
    assert not anything.matches({"f": None})
    assert not anything.matches({})
    multiline = detection("{sel: {f: 'a*b'}, condition: sel}")
    assert multiline.matches({"f": "a\n\nb"})


def test_escapes(detection: Compile) -> None:
    literal_star = detection(r"{sel: {f: 'x\*y'}, condition: sel}")
    assert literal_star.matches({"f": "x*y"})
    assert not literal_star.matches({"f": "xzy"})
    literal_question = detection(r"{sel: {f: 'what\?'}, condition: sel}")
    assert literal_question.matches({"f": "what?"})
    assert not literal_question.matches({"f": "whatx"})
    # a backslash before a non-wildcard stays a plain backslash, single or doubled
    assert detection(r"{sel: {f: 'C:\Temp'}, condition: sel}").matches({"f": "C:\\Temp"})
    assert detection(r"{sel: {f: 'C:\\Temp'}, condition: sel}").matches({"f": "C:\\Temp"})
    # `\\*` is a backslash followed by a wildcard
    backslash_then_any = detection(r"{sel: {f: 'dir\\*'}, condition: sel}")
    assert backslash_then_any.matches({"f": "dir\\anything"})
    assert not backslash_then_any.matches({"f": "dirx"})
    # `\\\*` is a backslash followed by a plain star
    backslash_star = detection(r"{sel: {f: 'dir\\\*'}, condition: sel}")
    assert backslash_star.matches({"f": "dir\\*"})
    assert not backslash_star.matches({"f": "dir\\x"})
    # three or four backslashes are a double backslash
    assert detection(r"{sel: {f: 'a\\\\b'}, condition: sel}").matches({"f": "a\\\\b"})


def test_dotted_field_prefers_the_flat_key(detection: Compile) -> None:
    rule = detection("{sel: {event.action: push}, condition: sel}")
    assert rule.matches({"event.action": "push"})
    assert rule.matches({"event": {"action": "push"}})
    assert not rule.matches({"event.action": "pull", "event": {"action": "push"}})
    assert not rule.matches({"event": "push"})


def test_dotted_field_through_dotted_keys_and_lists(detection: Compile) -> None:
    decision = detection(
        "{sel: {annotations.authorization.k8s.io/decision: allow}, condition: sel}"
    )
    assert decision.matches({"annotations": {"authorization.k8s.io/decision": "allow"}})
    assert not decision.matches({"annotations": {"authorization.k8s.io/decision": "deny"}})
    image = detection("{sel: {spec.containers.image|startswith: evil/}, condition: sel}")
    pod = {"spec": {"containers": [{"image": "nginx"}, {"image": "evil/miner:1"}]}}
    assert image.matches(pod)
    assert not image.matches({"spec": {"containers": [{"image": "nginx"}, {"name": "x"}]}})
    assert not image.matches({"spec": {"containers": []}})


def test_field_names_are_case_sensitive(detection: Compile) -> None:
    rule = detection("{sel: {Action: push}, condition: sel}")
    assert not rule.matches({"action": "push"})


def test_objects_do_not_match_strings(detection: Compile) -> None:
    rule = detection("{sel: {actor: '*'}, condition: sel}")
    assert not rule.matches({"actor": {"login": "x"}})


def test_keywords_search_every_leaf_as_substrings(detection: Compile) -> None:
    rule = detection("{keywords: ['event::clear', 'Drop Table'], condition: keywords}")
    assert rule.matches({"msg": "called EVENT::CLEAR now"})
    assert rule.matches({"a": {"b": [{"c": "sql: drop table users"}]}})
    assert not rule.matches({"event::clear": "key names are not searched"})
    assert not rule.matches({"msg": "event:clear"})
    assert rule.keyword_search
    assert rule.fields == frozenset()


def test_keywords_all_may_match_different_leaves(detection: Compile) -> None:
    rule = detection(
        "{keywords: {'|all': [OabVirtualDirectory, ' -ExternalUrl ']}, condition: keywords}"
    )
    assert rule.matches({"a": "Set-OabVirtualDirectory", "b": "x -ExternalUrl y"})
    assert not rule.matches({"a": "Set-OabVirtualDirectory"})


def test_keywords_see_numbers_and_honour_wildcards(detection: Compile) -> None:
    number = detection("{keywords: [4625], condition: keywords}")
    assert number.matches({"event": {"code": 4625}})
    assert number.matches({"msg": "4625"})
    assert not number.matches({"msg": "event 4625 seen"})
    prefix = detection("{keywords: {'|startswith': 'wget '}, condition: keywords}")
    assert prefix.matches({"cmd": "wget http://x"})
    assert not prefix.matches({"cmd": "sudo wget http://x"})


def test_map_is_and_and_list_of_maps_is_or(detection: Compile) -> None:
    both = detection("{sel: {a: 1, b: 2}, condition: sel}")
    either = detection("{sel: [{a: 1}, {b: 2}], condition: sel}")
    assert both.matches({"a": 1, "b": 2})
    assert not both.matches({"a": 1, "b": 3})
    assert either.matches({"a": 1, "b": 3})
    assert either.matches({"a": 0, "b": 2})
    assert not either.matches({"a": 0, "b": 0})


def test_fields_lists_what_the_rule_reads(detection: Compile) -> None:
    rule = detection("{sel: {verb: create, objectRef.resource|contains: pod}, condition: sel}")
    assert rule.fields == frozenset({"verb", "objectRef.resource"})
    assert not rule.keyword_search


def test_exists_through_a_list_sees_a_field_holding_an_empty_list(detection: Compile) -> None:
    rule = detection("{sel: {a.b|exists: true}, condition: sel}")
    assert rule.matches({"a": {"b": []}})
    assert rule.matches({"a": [{"b": []}]})
    assert not rule.matches({"a": [{"c": 1}]})
