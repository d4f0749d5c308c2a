"""`detector backtest` end to end: per rule the detections per day over the replayed
period, the top groups and the share, on the terminal and in --report; nothing is sent
to a sink."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path

import orjson
import yaml

from tests.e2e.test_replay_scenarios import ROOT

DESTROY = """
title: Repository Destroyed
id: 6a1d2c3b-0000-4000-8000-00000000b001
level: high
logsource: {product: github, service: audit}
detection: {selection: {action: repo.destroy}, condition: selection}
"""
CREATE = """
title: Repository Created
id: 6a1d2c3b-0000-4000-8000-00000000b002
level: low
logsource: {product: github, service: audit}
detection: {selection: {action: repo.create}, condition: selection}
"""
DAY_ONE = datetime(2025, 3, 10, 9, tzinfo=UTC)


def record(number: int, day: int, action: str, actor: str, repo: str) -> bytes:
    when = DAY_ONE + timedelta(days=day, minutes=number)
    return orjson.dumps(
        {
            "@timestamp": int(when.timestamp() * 1000),
            "_document_id": f"bt-{number}",
            "action": action,
            "actor": actor,
            "repo": repo,
            "org": "acme",
        }
    )


def history(tmp_path: Path) -> Path:
    """Four days of GitHub audit: destroys on days 0 and 3, a create on day 1, and a
    quiet day 2 with only an unrelated event."""
    records = [
        record(1, 0, "repo.destroy", "alice", "acme/x"),
        record(2, 0, "repo.destroy", "alice", "acme/x"),
        record(3, 1, "repo.create", "carol", "acme/new"),
        record(4, 2, "repo.rename", "carol", "acme/new"),
        record(5, 3, "repo.destroy", "bob", "acme/y"),
        record(6, 3, "repo.destroy", "bob", "acme/y"),
        record(7, 3, "repo.destroy", "bob", "acme/z"),
    ]
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "github.jsonl").write_bytes(b"\n".join(records) + b"\n")
    return logs


def backtest(tmp_path: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "destroy.yml").write_text(DESTROY)
    (rules / "create.yml").write_text(CREATE)
    result = subprocess.run(
        [sys.executable, "-m", "detector", "backtest", "--rules", str(rules),
         "--dead-letter", str(tmp_path / "dead.jsonl"), *map(str, args)],
        cwd=ROOT, capture_output=True, check=False, timeout=120, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result


def cells(table: str, title: str) -> list[str]:
    """The cells of the first line of `title`'s row in the rich table."""
    line = next(line for line in table.splitlines() if f"│ {title} " in line)
    return [cell.strip() for cell in line.strip("│ ").split("│")]


def test_per_rule_detections_per_day_top_groups_and_share(tmp_path: Path) -> None:
    result = backtest(tmp_path, history(tmp_path), "--top", "2")
    table = result.stdout
    assert "2 rules fired over 4 day(s)" in table
    header = next(line for line in table.splitlines() if "┃ rule" in line)
    assert [c.strip() for c in header.strip("┃ ").split("┃")][4:8] == [
        "03-10", "03-11", "03-12", "03-13"
    ]  # fmt: skip
    destroy = cells(table, "Repository Destroyed")
    assert destroy[1:8] == ["high", "5", "83.3%", "2", "0", "0", "3"]
    assert destroy[8] == "actor: bob (3)"
    create = cells(table, "Repository Created")
    assert create[1:8] == ["low", "1", "16.7%", "0", "1", "0", "0"]
    # the row's second line continues the top groups: ties (alice, acme/x, acme/y: 2) by name
    lines = table.splitlines()
    first = next(line for line in lines if "│ Repository Destroyed " in line)
    assert lines[lines.index(first) + 1].rstrip(" │").endswith("actor: alice (2)")


def test_the_report_has_the_same_data_and_no_sink_is_used(tmp_path: Path) -> None:
    sink_file = tmp_path / "alerts.jsonl"
    config = tmp_path / "detector.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "sinks": {
                    "outbox_dir": str(tmp_path / "outbox"),
                    "outputs": [{"name": "siem", "type": "file", "path": str(sink_file)}],
                }
            }
        )
    )
    report = tmp_path / "backtest.html"
    result = backtest(tmp_path, history(tmp_path), "--config", config, "--report", report)
    assert not sink_file.exists() and not (tmp_path / "outbox").exists()
    assert result.stdout.count("│ Repository") == 2  # nothing but the table on stdout
    html = report.read_text()
    assert "<h1>Backtest report</h1>" in html
    assert "4 day(s): 2025-03-10 to 2025-03-13" in html
    row = html[html.index('href="#rule-6a1d2c3b-0000-4000-8000-00000000b001"') :]
    row = row[: row.index("</tr>")]
    assert '<td class="n">5</td><td class="n">83.3%</td>' in row
    assert [int(n) for n in re.findall(r"<title>[\d-]+: (\d+)</title>", row)] == [2, 0, 0, 3]
    assert f"{escape('actor: bob')} (3)" in row
