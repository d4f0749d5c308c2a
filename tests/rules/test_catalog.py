"""The rule catalog: rules/README.md is current, and its rendering on a small rule pack."""

from __future__ import annotations

import textwrap
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

from detector.rules.catalog import CONTROLS, REGENERATE, render_catalog

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"


def test_committed_catalog_equals_a_fresh_rendering() -> None:
    readme = RULES / "README.md"
    committed = readme.read_text(encoding="utf-8") if readme.exists() else ""
    assert committed == render_catalog([RULES]), (
        f"rules/README.md does not match the rules: run `{REGENERATE}` and commit the result"
    )


def test_every_stem_pattern_of_the_control_map_names_a_shipped_rule() -> None:
    stems = {
        path.stem
        for path in RULES.rglob("*.yml")
        if not path.name.endswith(".tests.yml") and path.is_file()
    }
    stale = [
        f"{control_id}: {pattern}"
        for control_id, control in CONTROLS.items()
        for pattern in control.rules
        if not any(fnmatchcase(stem, pattern) for stem in stems)
    ]
    assert stale == []


SSO = """
title: SSO Off | For Real
id: 0b6c1f0e-1d1e-4c39-9a55-000000000001
status: test
level: high
tags: [attack.defense-evasion, attack.t1556, attack.T1556.006]
logsource: {product: github, service: audit}
detection:
    selection: {action: org.disable_saml}
    condition: selection
"""

STREAM = """
title: Stream gone
id: 0b6c1f0e-1d1e-4c39-9a55-000000000002
status: experimental
level: medium
tags: [attack.t1562.008]
logsource: {product: github, service: audit}
detection:
    selection: {action: audit_log_streaming.destroy}
    condition: selection
"""

ODD = """
title: Odd pull
id: 0b6c1f0e-1d1e-4c39-9a55-000000000003
level: low
logsource: {product: registry, service: audit}
detection:
    selection: {action: pull}
    condition: selection
"""

MANY_SSO = """
title: SSO off twice
id: 0b6c1f0e-1d1e-4c39-9a55-000000000004
level: critical
correlation:
    type: event_count
    rules: [0b6c1f0e-1d1e-4c39-9a55-000000000001]
    group-by: [actor]
    timespan: 1h
    condition: {gte: 2}
"""

BROKEN = """
title: Broken
id: 0b6c1f0e-1d1e-4c39-9a55-000000000005
logsource: {product: github, service: audit}
detection:
    selection: {action: x}
    condition: selection and missing
"""

SSO_TESTS = """
match:
  - {action: org.disable_saml}
  - {action: org.disable_saml, actor: mallory}
no_match:
  - {action: org.enable_saml}
"""


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    root = tmp_path / "rules"
    write(root / "github" / "github_saml_sso_disabled.yml", SSO)
    write(root / "github" / "github_saml_sso_disabled.tests.yml", SSO_TESTS)
    write(root / "github" / "stream_gone.yml", STREAM)
    write(root / "github" / "stream_gone.tests.yml", "match: [{action: a}]\n")
    write(root / "registry" / "odd_pull.yml", ODD)
    write(root / "correlations" / "many_sso.yml", MANY_SSO)
    write(root / "broken" / "broken.yml", BROKEN)
    return root


def section(text: str, heading: str) -> list[str]:
    """The lines under `heading` up to the next heading."""
    lines = text.splitlines()
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return [line for line in lines[start:end] if line]


def test_intro_and_counts_per_source(pack: Path) -> None:
    text = render_catalog([pack])
    lines = text.splitlines()
    assert lines[0] == "# Rule pack"
    assert lines[2] == f"Generated from the rule files by `{REGENERATE}`; do not edit it by hand."
    assert (
        "4 rules from 3 sources, with 4 test events (3 that must fire, 1 that must stay silent)."
        in lines
    )
    table = lines[
        lines.index("| source | rules | critical | high | medium | low | informational |") :
    ]
    assert table[2:6] == [
        "| correlations | 1 | 1 | 0 | 0 | 0 | 0 |",
        "| github | 2 | 0 | 1 | 1 | 0 | 0 |",
        "| registry | 1 | 0 | 0 | 0 | 1 | 0 |",
        "| all | 4 | 1 | 1 | 1 | 1 | 0 |",
    ]


def test_rules_table_sorted_with_techniques_tests_and_links(pack: Path) -> None:
    rows = [line for line in section(render_catalog([pack]), "## Rules") if line.startswith("| ")]
    assert rows == [
        "| source | logsource | title | level | status | ATT&CK | tests | file |",
        "| correlations | correlation: event_count | SSO off twice | critical | - | - | none "
        "| [many_sso.yml](correlations/many_sso.yml) |",
        "| github | github/audit | SSO Off \\| For Real | high | test | T1556, T1556.006 | 2 / 1 "
        "| [github_saml_sso_disabled.yml](github/github_saml_sso_disabled.yml) |",
        "| github | github/audit | Stream gone | medium | experimental | T1562.008 | 1 / 0 "
        "| [stream_gone.yml](github/stream_gone.yml) |",
        "| registry | registry/audit | Odd pull | low | - | - | none "
        "| [odd_pull.yml](registry/odd_pull.yml) |",
    ]


def test_coverage_by_stem_and_by_tag(pack: Path) -> None:
    lines = section(render_catalog([pack]), "## Coverage of the threat model")
    assert (
        "| source control | SSO and MFA enforced | `scm.sso-mfa` | 1 "
        "| [github_saml_sso_disabled](github/github_saml_sso_disabled.yml) |"
    ) in lines
    assert (
        "| monitoring | audit logs from every system streamed centrally "
        "| `monitoring.audit-streaming` | 1 | [stream_gone](github/stream_gone.yml) |"
    ) in lines
    assert (
        "| deployment | a NetworkPolicy in every namespace | `deployment.network-policy` | 0 "
        "| none yet |" in lines
    )
    assert (
        "| monitoring | alerts on high-risk actions | `monitoring.alerts` | 0 "
        "| the pack itself: every rule is an alert on a high-risk action |"
    ) in lines
    summary = next(line for line in lines if " controls are watched by a rule" in line)
    assert summary.startswith(
        f"2 of {len(CONTROLS)} controls are watched by a rule; no rule yet for "
    )
    assert "`scm.sso-mfa`" not in summary and "`deployment.network-policy`" in summary


def test_unmapped_rules_and_files_that_do_not_load(pack: Path) -> None:
    text = render_catalog([pack])
    assert section(text, "## Rules not mapped to a control")[1:] == [
        "- correlations: SSO off twice ([many_sso](correlations/many_sso.yml))",
        "- registry: Odd pull ([odd_pull](registry/odd_pull.yml))",
    ]
    assert section(text, "## Files that do not load") == [
        "- `broken/broken.yml`: compile: condition names undefined search identifier 'missing'",
    ]
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_rendering_is_deterministic_and_independent_of_the_working_directory(
    pack: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = render_catalog([pack])
    monkeypatch.chdir(pack.parent)
    assert render_catalog(["rules"]) == first
    assert render_catalog([Path("rules")]) == first
