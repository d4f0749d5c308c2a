"""`detector replay --report`: the HTML report of shipped scenarios (sections, counts,
correlation chains, rule versions), escaping of attacker-controlled text, and, in headless
Chromium without network, a page that renders with its chart."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from collections import Counter
from html import escape
from io import BytesIO
from pathlib import Path

import orjson
import pytest

from detector.config import SourcesSettings
from detector.events import Event
from detector.normalize import NormalizeStage
from detector.normalize.builtin import build_registry
from detector.sources.files import read_paths
from tests.e2e.test_replay_scenarios import ROOT

SCENARIO = ROOT / "replay" / "01-stolen-github-token"
CHAIN_SCENARIO = ROOT / "replay" / "02-tampered-pipeline"
CHROMIUM = Path("/usr/bin/chromium")
SCRIPT = "<script>alert('pwned')</script>"

#: a GitHub audit record whose attacker-chosen fields carry markup
HOSTILE_RECORD = {
    "@timestamp": 1741611463961,
    "_document_id": "hostile-1",
    "action": "repo.destroy",
    "actor": SCRIPT,
    "repo": f"acme/{SCRIPT}",
    "org": "acme",
}
HOSTILE_RULE = """
title: Repository Destroyed <b>bold</b>
id: 3c0f7a52-4d3e-4b55-9f61-6e2f0d8c1a01
level: high
logsource: {product: github, service: audit}
detection: {selection: {action: repo.destroy}, condition: selection}
"""


def report_of(tmp_path: Path, *args: str | Path) -> tuple[str, list[dict[str, object]]]:
    """Replay with --report: the report and the detections."""
    report, output = tmp_path / "report.html", tmp_path / "detections.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "detector", "replay", *map(str, args),
         "--report", str(report), "--output", str(output),
         "--dead-letter", str(tmp_path / "dead.jsonl")],
        cwd=ROOT, capture_output=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    detections = [orjson.loads(line) for line in output.read_bytes().splitlines()]
    return report.read_text(encoding="utf-8"), detections


def rule_heading_count(html: str, rule_id: str) -> int:
    match = re.search(
        rf'<h3 id="rule-{re.escape(rule_id)}">.*?<span class="muted">\((\d+)\)</span></h3>', html
    )
    assert match, f"no section for rule {rule_id}"
    return int(match.group(1))


def test_report_of_a_scenario_has_every_section_and_the_right_counts(tmp_path: Path) -> None:
    html, detections = report_of(tmp_path, SCENARIO / "logs", "--rules", "rules")
    for section in ("summary", "timeline", "rules", "detections", "rules-used"):
        assert f'id="{section}"' in html
    assert "<script" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    ), "the report must need no script and fetch nothing"
    # one section per rule, counting exactly that rule's detections
    lines = (SCENARIO / "expected.jsonl").read_bytes().splitlines()
    per_rule = Counter(str(orjson.loads(line)["rule"]) for line in lines if line.strip())
    assert len(detections) == sum(per_rule.values())
    for rule_id, count in per_rule.items():
        assert rule_heading_count(html, rule_id) == count
    assert f'<tr><td>detections</td><td class="n">{len(detections)}</td></tr>' in html
    # events per source, counted here by normalizing the logs
    stage = NormalizeStage(build_registry(SourcesSettings()))
    by_source = Counter(
        item.event_source
        for raw in read_paths([str(SCENARIO / "logs")])
        for item in stage.process(raw)
        if isinstance(item, Event)
    )
    assert len(by_source) >= 5
    for name, number in by_source.items():
        assert f'<tr><td>{name}</td><td class="n">{number}</td></tr>' in html
    # the command line and the version of every rule file
    assert escape(f"replay {SCENARIO / 'logs'} --rules rules --report") in html
    rule_file = (
        ROOT
        / "rules"
        / "github"
        / next(p.name for p in (ROOT / "rules" / "github").glob("*.yml") if ".tests." not in p.name)
    )
    digest = hashlib.sha256(rule_file.read_bytes()).hexdigest()[:16]
    assert f'<td class="w">rules/github/{rule_file.name}</td><td>{digest}</td>' in html
    assert re.search(r"SHA-256 over every rule file: <code>[0-9a-f]{64}</code>", html)


def test_correlation_evidence_is_drawn_as_ordered_steps(tmp_path: Path) -> None:
    html, detections = report_of(tmp_path, CHAIN_SCENARIO / "logs", "--rules", "rules")
    chained = [d for d in detections if "group" in d and len(d["evidence"]) > 1]  # type: ignore[arg-type]
    assert chained
    for detection in chained:
        start = html.index(f"<code>{detection['id']}</code>")
        chain = html[start : html.index("</ol>", start)]
        steps = re.findall(r'<li class="step"><b>(\d+)\. ([^<]*)</b><br>([^<]*)<br>', chain)
        evidence = detection["evidence"]
        assert isinstance(evidence, list)
        assert [int(n) for n, _, _ in steps] == list(range(1, len(evidence) + 1))
        assert [(action, time) for _, action, time in steps] == [
            (escape(e.get("action", "-")), e["@timestamp"]) for e in evidence
        ]
        assert chain.count('class="arrow"') == len(evidence) - 1


def test_attacker_controlled_text_is_escaped_and_dead_letters_are_counted(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "github.jsonl").write_bytes(
        orjson.dumps(HOSTILE_RECORD) + b"\n" + b"{not json\n" + b'{"no": "source"}\n'
    )
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "destroy.yml").write_text(HOSTILE_RULE)
    html, detections = report_of(tmp_path, logs, "--rules", rules)
    assert len(detections) == 1
    assert "<script" not in html and "<b>bold</b>" not in html
    assert escape(SCRIPT) in html
    assert escape("Repository Destroyed <b>bold</b>") in html
    assert re.search(r'<tr><td>dead-lettered</td><td class="n">2</td></tr>', html)
    letters = [orjson.loads(line) for line in (tmp_path / "dead.jsonl").read_bytes().splitlines()
               if line]  # fmt: skip
    for reason, number in Counter(str(letter["reason"]) for letter in letters).items():
        assert f'<tr><td class="w">{escape(reason)}</td><td class="n">{number}</td></tr>' in html


@pytest.mark.browser
def test_report_renders_in_headless_chromium_without_network(tmp_path: Path) -> None:
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    from PIL import Image

    html, detections = report_of(tmp_path, SCENARIO / "logs", "--rules", "rules")
    report = tmp_path / "report.html"
    screenshot = tmp_path / "report.png"
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2000",
        # no network at all: every host resolves nowhere
        "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
    ]  # fmt: skip
    binary = str(CHROMIUM) if CHROMIUM.exists() else str(shutil.which("chromium"))
    shot = subprocess.run(
        [binary, *flags, f"--screenshot={screenshot}", report.as_uri()],
        capture_output=True, check=False, timeout=120,
    )  # fmt: skip
    assert shot.returncode == 0 and screenshot.exists(), shot.stderr.decode()[-2000:]
    dom = subprocess.run(
        [binary, *flags, "--dump-dom", report.as_uri()],
        capture_output=True, check=False, timeout=120,
    )  # fmt: skip
    assert dom.returncode == 0, dom.stderr.decode()[-2000:]
    page = dom.stdout.decode()
    for title in {str(d["rule"]["title"]) for d in detections}:  # type: ignore[index]
        assert escape(title) in page
    image = Image.open(BytesIO(screenshot.read_bytes())).convert("RGB")
    assert image.size == (1280, 2000)
    # the timeline is in the first screen: its bars are in the level colours
    colours = {colour for _, colour in image.getcolors(maxcolors=1 << 20) or []}
    assert len(colours) > 50, "the page looks blank"
    level_colours = {(0xF9, 0xA8, 0x25), (0x7B, 0x1F, 0xA2), (0xEF, 0x6C, 0x00)}
    assert level_colours <= colours, "the timeline bars are not drawn"
    assert html.count("<svg") >= 2
