"""Building a responder from the configuration, for the service, the CLI and replay."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from detector.config import ConfigError
from detector.respond.audit import ActionRecord, AuditTrail
from detector.respond.playbooks import load_playbooks
from detector.respond.responder import Responder
from detector.respond.settings import RespondersSettings
from detector.respond.state import StateStore


class PlaybooksNotLoadedError(ConfigError):
    """A playbook with problems: the responder does not start with part of its playbooks."""


def open_responder(
    settings: RespondersSettings,
    *,
    playbooks: Iterable[Path] | None = None,
    dry: bool = False,
    audit: Path | None = None,
    publish: Callable[[ActionRecord, bytes], None] | None = None,
) -> Responder:
    """The configured responder. `dry`: keeps its state in memory and never runs anything
    (replay); `audit` overrides where its records go; `publish` gets each record too."""
    loaded = load_playbooks(settings.playbooks if playbooks is None else playbooks)
    if loaded.problems:
        shown = "; ".join(str(p) for p in loaded.problems[:5])
        more = " ..." if len(loaded.problems) > 5 else ""
        raise PlaybooksNotLoadedError(f"playbooks not loaded: {shown}{more}")
    return Responder(
        settings,
        loaded.playbooks,
        store=StateStore(None if dry else settings.state),
        audit=AuditTrail(audit or settings.audit, publish),
        dry=dry,
    )


def describe_responders(settings: RespondersSettings) -> list[str]:
    """What `detector run` will do about responses (nothing to say without playbooks);
    reads the approvers' secrets (so a missing one is reported), prints none."""
    if not settings.playbooks:
        return []
    loaded = load_playbooks(settings.playbooks)
    if loaded.problems:
        raise PlaybooksNotLoadedError("; ".join(str(p) for p in loaded.problems[:5]))
    lines = [
        f"responders: {len(loaded.playbooks)} playbooks, state in {settings.state}, "
        f"audit trail in {settings.audit}",
        f"  systems: {', '.join(sorted(settings.systems)) or 'none (nothing can run)'}",
    ]
    for approver in settings.approvers:
        approver.token.read()
        lines.append(f"  approver {approver.name}: token from the {approver.token.where()}")
    if not settings.approvers:
        lines.append("  no approvers: decisions only through `detector actions`")
    return lines
