"""Building a responder from the configuration, for the service, the CLI and replay."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import detector.respond.actions  # noqa: F401  (registers the actions)
from detector.respond.audit import AuditTrail
from detector.respond.playbooks import load_playbooks
from detector.respond.responder import Responder
from detector.respond.settings import RespondersSettings
from detector.respond.state import StateStore


class PlaybooksNotLoadedError(ValueError):
    """A playbook with problems: the responder does not start with part of its playbooks."""


def open_responder(
    settings: RespondersSettings,
    *,
    playbooks: Iterable[Path] | None = None,
    dry: bool = False,
    audit: Path | None = None,
) -> Responder:
    """The configured responder. `dry`: keeps its state in memory and never runs anything
    (replay); `audit` overrides where its records go."""
    loaded = load_playbooks(settings.playbooks if playbooks is None else playbooks)
    if loaded.problems:
        shown = "; ".join(str(p) for p in loaded.problems[:5])
        more = " ..." if len(loaded.problems) > 5 else ""
        raise PlaybooksNotLoadedError(f"playbooks not loaded: {shown}{more}")
    return Responder(
        settings,
        loaded.playbooks,
        store=StateStore(None if dry else settings.state),
        audit=AuditTrail(audit or settings.audit),
        dry=dry,
    )
