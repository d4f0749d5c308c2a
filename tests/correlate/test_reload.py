"""Reloading rules: a new engine adopts the state of the unchanged correlations."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from detector.config import Settings
from detector.correlate import EngineSettings
from detector.correlate.engine import Adoption
from detector.detections import Detection
from detector.events import Event
from detector.runtime.service import Service

from .conftest import BASE_RULES, Correlator, at

Make = Callable[..., Event]
LATE = EngineSettings(allowed_lateness=timedelta(minutes=5))

BRUTE_FORCE = "c0ffee00-0000-4000-8000-00000000000a"
SECRETS = "c0ffee00-0000-4000-8000-00000000000b"
RULES = f"""
title: Brute force
id: {BRUTE_FORCE}
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [user.name]
  timespan: 10m
  condition: {{gte: 3}}
---
title: Secrets read
id: {SECRETS}
correlation:
  type: event_count
  rules: [secret_read]
  group-by: [user.name]
  timespan: 10m
  condition: {{gte: 2}}
"""
#: Brute force as it was; Secrets read with another timespan
CHANGED = RULES.replace(
    "timespan: 10m\n  condition: {gte: 2}", "timespan: 15m\n  condition: {gte: 2}"
)

BEFORE = [(0, "login.failed"), (1, "login.failed"), (1.5, "secret.read")]
AFTER = [(2, "login.failed"), (3, "secret.read"), (20, "repo.create")]


def _reloaded(new_rules: str, event: Make) -> tuple[Correlator, Adoption, list[Detection]]:
    """`BEFORE` through `RULES`, a reload to `new_rules`, then `AFTER` and the flush."""
    old = Correlator(RULES, LATE)
    assert old.feed([event(m, action) for m, action in BEFORE]) == []  # all in the buffer
    new = Correlator(new_rules, LATE)
    adoption = new.engine.adopt(old.engine)
    assert new.engine.watermark == old.engine.watermark == at(1.5 - 5)
    detections = new.run([event(m, action) for m, action in AFTER])
    return new, adoption, detections


def test_an_unchanged_correlation_keeps_its_window_and_a_changed_one_starts_empty(event: Make):
    new, adoption, detections = _reloaded(CHANGED, event)
    assert adoption == Adoption(kept=(BRUTE_FORCE,), changed=(SECRETS,), added=(), removed=())
    uninterrupted = Correlator(RULES, LATE).run(
        [event(m, action) for m, action in (*BEFORE, *AFTER)]
    )
    # the pending brute force fires exactly as without the reload, buffered events included
    [brute_force] = detections
    assert brute_force.rule.id == BRUTE_FORCE
    assert brute_force.timestamp == at(2)
    assert [e.id for e in brute_force.evidence] == [
        "login.failed:alice:0",
        "login.failed:alice:1",
        "login.failed:alice:2",
    ]
    assert brute_force.to_dict() == uninterrupted[0].to_dict()
    # without the reload the two reads would have made a detection
    assert [d.rule.id for d in uninterrupted] == [BRUTE_FORCE, SECRETS]
    assert new.engine.stats.detections == {BRUTE_FORCE: 1}


def test_a_reload_without_changes_is_the_uninterrupted_run(event: Make):
    _, adoption, detections = _reloaded(RULES, event)
    assert adoption.kept == (BRUTE_FORCE, SECRETS)
    assert adoption.changed == adoption.added == adoption.removed == ()
    uninterrupted = Correlator(RULES, LATE).run(
        [event(m, action) for m, action in (*BEFORE, *AFTER)]
    )
    assert [d.to_dict() for d in detections] == [d.to_dict() for d in uninterrupted]


def test_added_and_removed_correlations_are_reported(event: Make):
    brute_force_only = RULES.split("---")[0]
    old = Correlator(RULES, LATE)
    new = Correlator(
        brute_force_only
        + """---
title: Token then download
id: c0ffee00-0000-4000-8000-00000000000c
correlation:
  type: temporal_ordered
  rules: [token_created, download]
  group-by: [user.name]
  timespan: 10m
""",
        LATE,
    )
    adoption = new.engine.adopt(old.engine)
    assert adoption == Adoption(
        kept=(BRUTE_FORCE,),
        changed=(),
        added=("c0ffee00-0000-4000-8000-00000000000c",),
        removed=(SECRETS,),
    )


ABSENCE_AND_FIRST_SEEN = """
title: Token created without a login
id: c0ffee00-0000-4000-8000-00000000000d
correlation:
  type: absence
  rules: [token_created, login]
  group-by: [user.name]
  timespan: 10m
---
title: Download by a new user
id: c0ffee00-0000-4000-8000-00000000000e
correlation:
  type: first_seen
  rules: [download]
  group-by: [repository]
  timespan: 1d
  condition: {field: user.name}
  suppression: 1h
"""


def test_timers_histories_and_suppression_periods_carry_over(event: Make):
    settings = EngineSettings(allowed_lateness=timedelta(0))
    old = Correlator(ABSENCE_AND_FIRST_SEEN, settings)
    first = old.feed(
        [
            event(0, "token.create"),
            event(1, "artifact.download", repository="acme/api"),
            event(2, "artifact.download", "bob", repository="acme/api"),
            event(3, "repo.create"),
        ]
    )
    # bob is new to acme/api but within alice's suppression period: absorbed for later
    assert [(d.rule.title, d.evidence[0].id) for d in first] == [
        ("Download by a new user", "artifact.download:alice:1"),
    ]
    new = Correlator(ABSENCE_AND_FIRST_SEEN, settings)
    new.engine.adopt(old.engine)
    later = new.feed(
        [
            event(4, "artifact.download", repository="acme/api"),  # alice is known: silent
            event(70, "repo.create"),  # past the absence deadline and the period's end
        ]
    )
    absence, absorbed = later
    assert absence.rule.title == "Token created without a login"
    assert (absence.window.start, absence.window.end) == (at(0), at(10))
    assert absorbed.id == first[0].id
    assert [e.id for e in absorbed.evidence] == [
        "artifact.download:alice:1",
        "artifact.download:bob:2",
    ]
    assert new.engine.stats.suppressed == 1


def test_only_a_fresh_engine_adopts(event: Make):
    old, new = Correlator(RULES, LATE), Correlator(RULES, LATE)
    new.feed([event(0, "repo.create")])
    with pytest.raises(ValueError, match="only a fresh engine"):
        new.engine.adopt(old.engine)


# -- the service ----------------------------------------------------------------------------

SERVICE_RULES = BASE_RULES + "---\n" + RULES


def _service(tmp_path: Path) -> tuple[Service, Path]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "pack.yml").write_text(SERVICE_RULES)
    settings = Settings.model_validate(
        {
            "rules": {"paths": [str(rules)]},
            "sinks": {"outbox_dir": str(tmp_path / "outbox")},
            "service": {
                "dead_letter": str(tmp_path / "dead.jsonl"),
                "staging_output": str(tmp_path / "staged.jsonl"),
                "metrics_port": None,
            },
        }
    )
    return Service(settings), rules / "pack.yml"


def test_the_service_keeps_its_rules_when_the_new_set_has_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    service, pack = _service(tmp_path)
    running = service.rules
    pack.with_name("broken.yml").write_text(
        "title: Broken\nid: c0ffee00-0000-4000-8000-0000000000ff\n"
        "logsource: {product: cicd}\ndetection: {condition: selection}\n"
    )
    with caplog.at_level(logging.INFO, logger="detector.service"):
        asyncio.run(service.reload())
    assert service.rules is running
    [error] = [
        r
        for r in caplog.records
        if getattr(r, "rule_id", None) == "c0ffee00-0000-4000-8000-0000000000ff"
    ]
    assert error.levelname == "ERROR"
    assert error.path == str(pack.with_name("broken.yml"))  # type: ignore[attr-defined]
    assert (error.kind, error.reason) == ("sigma", "No detections defined in Sigma rule")  # type: ignore[attr-defined]
    assert caplog.records[-1].getMessage() == "rules not reloaded, the running set stays"


def test_the_service_swaps_in_a_good_set_and_says_what_started_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    service, pack = _service(tmp_path)
    running = service.rules
    pack.write_text(BASE_RULES + "---\n" + CHANGED)
    with caplog.at_level(logging.INFO, logger="detector.service"):
        asyncio.run(service.reload())
    assert service.rules is not running
    reloaded = next(r for r in caplog.records if r.getMessage().startswith("rules reloaded"))
    assert reloaded.kept == [BRUTE_FORCE]  # type: ignore[attr-defined]
    assert reloaded.changed == [SECRETS]  # type: ignore[attr-defined]
    empty = [r for r in caplog.records if getattr(r, "correlation", None) == SECRETS]
    assert [r.getMessage() for r in empty] == [
        f"correlation {SECRETS} changed: its state starts empty"
    ]
