"""Loading rule files: collections, bad rules, correlations, filters, metadata."""

from __future__ import annotations

import textwrap
from pathlib import Path

from detector.rules import LogSource, load_rules

RULE_A = """
title: Exec into pod
id: 11111111-1111-4111-8111-111111111111
name: k8s_exec
status: test
level: medium
tags: [attack.execution, attack.t1609]
logsource: {category: application, product: kubernetes, service: audit}
detection:
    selection:
        verb: create
        objectRef.subresource: exec
    condition: selection
"""

RULE_B = """
title: Secret deleted
id: 22222222-2222-4222-8222-222222222222
logsource: {product: kubernetes, service: audit}
detection:
    selection: {verb: delete, objectRef.resource: secrets}
    condition: selection
"""

BAD_CONDITION = """
title: Broken condition
id: 33333333-3333-4333-8333-333333333333
logsource: {product: kubernetes, service: audit}
detection:
    selection: {verb: delete}
    condition: selection and missing
"""

CORRELATION = """
title: Many execs
id: 44444444-4444-4444-8444-444444444444
correlation:
    type: event_count
    rules: [k8s_exec]
    group-by: [user.username]
    timespan: 10m
    condition: {gte: 5}
"""


def write(directory: Path, name: str, *documents: str) -> Path:
    path = directory / name
    path.write_text("---\n".join(textwrap.dedent(d) for d in documents), encoding="utf-8")
    return path


EXEC = {"verb": "create", "objectRef": {"subresource": "exec", "namespace": "prod"}}


def test_multi_document_file_loads_good_rules_and_reports_bad_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "pack.yml", RULE_A, BAD_CONDITION, RULE_B)
    result = load_rules([tmp_path])
    assert [r.title for r in result.rules] == ["Exec into pod", "Secret deleted"]
    assert len(result.errors) == 1
    error = result.errors[0]
    assert error.path == path
    assert error.rule_id == "33333333-3333-4333-8333-333333333333"
    assert error.title == "Broken condition"
    assert error.kind == "compile"
    assert error.reason == "condition names undefined search identifier 'missing'"


def test_compiled_rule_metadata(tmp_path: Path) -> None:
    path = write(tmp_path, "exec.yml", RULE_A)
    (rule,) = load_rules([path]).rules
    assert rule.id == "11111111-1111-4111-8111-111111111111"
    assert rule.name == "k8s_exec"
    assert rule.title == "Exec into pod"
    assert rule.level == "medium"
    assert rule.status == "test"
    assert rule.tags == ("attack.execution", "attack.t1609")
    assert rule.logsource == LogSource("application", "kubernetes", "audit")
    assert rule.fields == frozenset({"verb", "objectRef.subresource"})
    assert rule.source == path
    assert rule.matches(EXEC)
    assert not rule.matches({"verb": "get", "objectRef": {"subresource": "exec"}})


def test_collection_with_global_action(tmp_path: Path) -> None:
    global_part = """
    action: global
    title: Kubernetes verbs
    logsource: {product: kubernetes, service: audit}
    detection:
        condition: selection
    """
    first = """
    id: 55555555-5555-4555-8555-555555555555
    detection:
        selection: {verb: create}
    """
    second = """
    id: 66666666-6666-4666-8666-666666666666
    detection:
        selection: {verb: delete}
    """
    write(tmp_path, "collection.yml", global_part, first, second)
    result = load_rules([tmp_path])
    assert result.errors == []
    assert [r.id for r in result.rules] == [
        "55555555-5555-4555-8555-555555555555",
        "66666666-6666-4666-8666-666666666666",
    ]
    assert [r.matches({"verb": "delete"}) for r in result.rules] == [False, True]


def test_bad_files_do_not_stop_the_others(tmp_path: Path) -> None:
    write(tmp_path, "a_good.yml", RULE_A)
    broken = write(tmp_path, "b_broken.yml", "title: [unclosed\n")
    listing = write(tmp_path, "c_list.yaml", "- just\n- a list\n")
    latin1 = tmp_path / "d_latin1.yml"
    latin1.write_bytes("title: caf\xe9\n".encode("latin-1"))
    no_detection = write(tmp_path, "e_nodetection.yml", "title: x\nlogsource: {product: y}\n")
    duplicate = write(tmp_path, "f_duplicate.yml", RULE_A)
    (tmp_path / "notes.txt").write_text("not a rule", encoding="utf-8")
    missing = tmp_path / "missing.yml"

    result = load_rules([tmp_path, missing, tmp_path / "a_good.yml"])  # listed twice: read once

    assert [r.title for r in result.rules] == ["Exec into pod"]
    errors = {(e.path, e.kind): e for e in result.errors}
    assert set(errors) == {
        (broken, "yaml"),
        (listing, "yaml"),
        (latin1, "io"),
        (no_detection, "sigma"),
        (duplicate, "duplicate-id"),
        (missing, "io"),
    }
    assert "while parsing a flow sequence" in errors[broken, "yaml"].reason
    assert errors[listing, "yaml"].reason == "YAML document 1 is a list, not a mapping"
    assert errors[no_detection, "sigma"].reason == "Sigma rule must have a detection definitions"
    assert errors[duplicate, "duplicate-id"].reason == (
        f"rule id already loaded from {tmp_path / 'a_good.yml'}"
    )
    assert errors[missing, "io"].reason == "no such file or directory"


def test_duplicate_id_in_one_file(tmp_path: Path) -> None:
    path = write(tmp_path, "twice.yml", RULE_A, RULE_A)
    result = load_rules([path])
    assert len(result.rules) == 1
    assert [(e.kind, e.reason) for e in result.errors] == [
        ("duplicate-id", f"rule id already loaded from {path}")
    ]


def test_correlations_are_kept_aside(tmp_path: Path) -> None:
    write(tmp_path, "rules.yml", RULE_A, CORRELATION)
    result = load_rules([tmp_path])
    assert [r.title for r in result.rules] == ["Exec into pod"]
    assert [c.title for c in result.correlations] == ["Many execs"]
    assert result.errors == []


def test_unresolved_placeholder_is_reported_and_configured_one_compiles(
    tmp_path: Path,
) -> None:
    rule = """
    title: Admin action
    id: 77777777-7777-4777-8777-777777777777
    logsource: {product: github, service: audit}
    detection:
        selection: {actor|expand: '%Administrators%'}
        condition: selection
    """
    write(tmp_path, "admin.yml", rule)
    unresolved = load_rules([tmp_path])
    assert unresolved.rules == []
    assert [(e.rule_id, e.kind, e.reason) for e in unresolved.errors] == [
        (
            "77777777-7777-4777-8777-777777777777",
            "compile",
            "placeholder %Administrators% has no configured values",
        )
    ]
    resolved = load_rules([tmp_path], placeholders={"Administrators": ["root", "admin"]})
    (compiled,) = resolved.rules
    assert compiled.matches({"actor": "Admin"})
    assert not compiled.matches({"actor": "alice"})


def exclusion_filter(rules: str, logsource: str = "{product: kubernetes}") -> str:
    return f"""
    title: Ignore the sandbox namespace
    id: 88888888-8888-4888-8888-888888888888
    logsource: {logsource}
    filter:
        rules: {rules}
        selection:
            objectRef.namespace: sandbox
        condition: not selection
    """


def test_filter_suppresses_matches_of_the_rules_it_names(tmp_path: Path) -> None:
    write(tmp_path, "rules.yml", RULE_A, RULE_B)
    write(tmp_path, "filter.yml", exclusion_filter("[11111111-1111-4111-8111-111111111111]"))
    result = load_rules([tmp_path])
    assert result.errors == []
    assert [f.title for f in result.filters] == ["Ignore the sandbox namespace"]
    exec_rule, secret_rule = result.rules
    assert [f.id for f in exec_rule.filters] == ["88888888-8888-4888-8888-888888888888"]
    assert secret_rule.filters == ()
    sandbox_exec = {"verb": "create", "objectRef": {"subresource": "exec", "namespace": "sandbox"}}
    assert exec_rule.matches(EXEC)
    assert not exec_rule.matches(sandbox_exec)
    assert exec_rule.fields == frozenset({"verb", "objectRef.subresource", "objectRef.namespace"})
    explanation = exec_rule.explain(sandbox_exec)
    assert explanation.condition is True
    assert explanation.filters == {"88888888-8888-4888-8888-888888888888": False}
    assert explanation.matched is False
    sandbox_delete = {
        "verb": "delete",
        "objectRef": {"resource": "secrets", "namespace": "sandbox"},
    }
    assert secret_rule.matches(sandbox_delete)


def test_filter_by_rule_name_and_any(tmp_path: Path) -> None:
    write(tmp_path, "rules.yml", RULE_A, RULE_B)
    write(tmp_path, "filter.yml", exclusion_filter("k8s_exec"))
    assert [len(r.filters) for r in load_rules([tmp_path]).rules] == [1, 0]
    write(tmp_path, "filter.yml", exclusion_filter("any"))
    assert [len(r.filters) for r in load_rules([tmp_path]).rules] == [1, 1]


def test_filter_needs_a_matching_logsource(tmp_path: Path) -> None:
    write(tmp_path, "rules.yml", RULE_A)
    write(tmp_path, "filter.yml", exclusion_filter("any", "{product: github}"))
    (rule,) = load_rules([tmp_path]).rules
    assert rule.filters == ()


def test_a_load_of_the_files_read_before_gives_them_whatever_the_files_became(
    tmp_path: Path,
) -> None:
    """The live service's workers compile the bytes the service compiled."""
    (tmp_path / "a.yml").write_text(RULE_A)
    (tmp_path / "broken.yml").write_text(BAD_CONDITION)
    first = load_rules([tmp_path, tmp_path / "gone.yml"], cache=None)
    (tmp_path / "a.yml").write_text(RULE_B)
    (tmp_path / "broken.yml").unlink()
    again = load_rules(first.sources, cache=None)
    assert [rule.title for rule in again.rules] == [rule.title for rule in first.rules]
    assert [rule.title for rule in again.rules] == ["Exec into pod"]
    assert [(e.path.name, e.kind) for e in again.errors] == [
        (e.path.name, e.kind) for e in first.errors
    ]
    assert {e.path.name for e in again.errors} == {"gone.yml", "broken.yml"}
    assert [path.name for path, _ in first.sources.files] == ["a.yml", "broken.yml"]
