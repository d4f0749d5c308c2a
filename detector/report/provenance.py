"""What produced a report: the command line and the exact rules (a content hash of each
rule file, and one hash over the whole set), so a finding can be reproduced."""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from detector import __version__
from detector.correlate.model import CorrelationRule
from detector.redact import redact_text
from detector.rules.compiled import CompiledRule


@dataclass(frozen=True)
class RuleVersion:
    """One loaded rule and the SHA-256 of the file it came from."""

    rule_id: str
    title: str
    path: str
    sha256: str


@dataclass(frozen=True)
class Provenance:
    command: str
    detector_version: str
    generated: datetime
    rules: list[RuleVersion]

    @property
    def pack_sha256(self) -> str:
        """One hash over every rule file (path and content), in path order."""
        digest = hashlib.sha256()
        for path, sha in sorted({(r.path, r.sha256) for r in self.rules}):
            digest.update(f"{path}\0{sha}\n".encode())
        return digest.hexdigest()


def rule_versions(
    rules: Iterable[CompiledRule], correlations: Iterable[CorrelationRule]
) -> list[RuleVersion]:
    """The version of each rule and correlation: its id (else title) and its file's hash."""
    hashes: dict[Path, str] = {}

    def file_hash(path: Path | None) -> tuple[str, str]:
        if path is None:
            return "", ""
        if path not in hashes:
            hashes[path] = hashlib.sha256(path.read_bytes()).hexdigest()
        return str(path), hashes[path]

    versions = [
        RuleVersion(rule.id or rule.title, rule.title, *file_hash(rule.source)) for rule in rules
    ]
    versions += [
        RuleVersion(rule.key, rule.title, *file_hash(rule.source)) for rule in correlations
    ]
    return sorted(versions, key=lambda v: (v.path, v.rule_id))


def provenance(
    argv: Sequence[str], rules: Iterable[CompiledRule], correlations: Iterable[CorrelationRule]
) -> Provenance:
    """The provenance of a run started with `argv` (the arguments after the program name);
    a token pasted into the command line is redacted."""
    return Provenance(
        command=redact_text(shlex.join(["detector", *argv])),
        detector_version=__version__,
        generated=datetime.now(UTC),
        rules=rule_versions(rules, correlations),
    )
