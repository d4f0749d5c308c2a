"""Fixtures for the correlation tests: rules from YAML text, events at minute offsets."""

from __future__ import annotations

import tempfile
import textwrap
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from detector.config import Settings
from detector.correlate import CorrelationEngine, CorrelationSet, EngineSettings
from detector.correlate import compile_correlations as compile_set
from detector.deadletter import DeadLetter
from detector.detections import Detection
from detector.events import Event
from detector.normalize.builtin import build_registry
from detector.pipeline import DetectionStage
from detector.rules import LoadResult, load_rules
from detector.rules.routing import RuleRouter

T0 = datetime(2025, 3, 11, 10, 0, tzinfo=UTC)
ROUTES = build_registry(Settings().sources).routes()

#: Single-event rules on normalized events, referenced by name in the correlations.
BASE_RULES = """
title: Failed login
id: 0b7c5b1e-0000-4000-8000-000000000001
name: failed_login
logsource: {product: cicd}
detection: {selection: {event.action: login.failed}, condition: selection}
---
title: Successful login
id: 0b7c5b1e-0000-4000-8000-000000000002
name: login
logsource: {product: cicd}
detection: {selection: {event.action: login.success}, condition: selection}
---
title: Secret read
id: 0b7c5b1e-0000-4000-8000-000000000003
name: secret_read
logsource: {product: cicd}
detection: {selection: {event.action: secret.read}, condition: selection}
---
title: Token created
id: 0b7c5b1e-0000-4000-8000-000000000004
name: token_created
logsource: {product: cicd}
detection: {selection: {event.action: token.create}, condition: selection}
---
title: Download
id: 0b7c5b1e-0000-4000-8000-000000000005
name: download
logsource: {product: cicd}
detection: {selection: {event.action: artifact.download}, condition: selection}
"""


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def load_text(text: str) -> LoadResult:
    """load_rules on YAML text (written to a temporary file)."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "rules.yml"
        path.write_text(textwrap.dedent(text))
        return load_rules([path])


def make_event(
    minute: float,
    action: str,
    user: str | None = "alice",
    *,
    source: str = "github",
    event_id: str | None = None,
    raw: dict[str, Any] | None = None,
    **fields: Any,
) -> Event:
    """A normalized event `minute` minutes after T0."""
    return Event(
        timestamp=at(minute),
        event_id=event_id or f"{action}:{user}:{minute}",
        event_source=source,
        event_action=action,
        user_name=user,
        raw=raw if raw is not None else {"action": action},
        **fields,
    )


class Correlator:
    """Base rules plus `text`, compiled; feeds events through matching and correlation."""

    def __init__(self, text: str, settings: EngineSettings | None = None, base: bool = True):
        self.loaded = load_text((BASE_RULES + "\n---\n" if base else "") + textwrap.dedent(text))
        assert not self.loaded.errors, self.loaded.errors
        self.correlations: CorrelationSet = compile_set(self.loaded)
        assert not self.correlations.errors, self.correlations.errors
        self.router = RuleRouter(self.loaded.rules, ROUTES)
        self.engine = CorrelationEngine(self.correlations, settings)
        self.stage = DetectionStage(self.router, self.engine)

    def feed(self, events: Iterable[Event]) -> list[Detection | DeadLetter]:
        """Correlation output (and late dead letters) of `events`, without the flush."""
        out: list[Detection | DeadLetter] = []
        for event in events:
            out.extend(self.engine.process(event, self.router.match(event)))
        return out

    def run(self, events: Iterable[Event]) -> list[Detection]:
        """Correlation detections of `events` including the end-of-input flush."""
        out = [item for item in self.feed(events) if isinstance(item, Detection)]
        return out + self.engine.flush()


@pytest.fixture(scope="session")
def correlator() -> type[Correlator]:
    return Correlator


@pytest.fixture(scope="session")
def event() -> Callable[..., Event]:
    return make_event


@pytest.fixture(scope="session")
def compile_correlations() -> Callable[[str], tuple[LoadResult, CorrelationSet]]:
    def compile_text(text: str) -> tuple[LoadResult, CorrelationSet]:
        loaded = load_text(BASE_RULES + "\n---\n" + textwrap.dedent(text))
        return loaded, compile_set(loaded)

    return compile_text
