"""`detector replay` on a terminal: the progress bar shows bytes read of the total,
events per second and the time left."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.test_replay_progress import RULE, github_records
from tests.e2e.test_replay_scenarios import ROOT

#: `replay ━━━━━━   12.3/45.6 kB 1,234 events/s ETA 0:00:03`
BAR = re.compile(r"replay .*?([\d.]+)/([\d.]+) (?:bytes|kB) +([\d,]+) events/s ETA (\d+:\d\d:\d\d)")


def test_progress_bar_on_a_terminal_has_bytes_rate_and_eta(tmp_path: Path) -> None:
    logs = tmp_path / "audit.jsonl"
    github_records(logs, 300, 10)  # 3 s of event time, paced at real time below
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "repo-create.yml").write_text(RULE)
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "detector", "replay", str(logs), "--rules", str(rules),
         "--speed", "1", "--dead-letter", str(tmp_path / "dead.jsonl")],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=terminal,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"},
    )  # fmt: skip
    os.close(terminal)
    screen = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the process has exited
            break
        if not chunk:
            break
        screen += chunk
    os.close(controller)
    assert process.wait(timeout=60) == 0
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.decode(errors="replace"))
    bars = BAR.findall(text)
    assert bars, text[-2000:]
    total = logs.stat().st_size / 1000
    assert {float(found[1]) for found in bars} == {round(total, 1)}
    assert any(int(rate.replace(",", "")) > 0 for _, _, rate, _ in bars)
