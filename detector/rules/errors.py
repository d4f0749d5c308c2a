"""The error the rule compiler raises, how pySigma errors become reasons, and the error a
load reports for a file, rule or filter it could not load."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class RuleCompileError(ValueError):
    """A parsed Sigma rule that this engine cannot evaluate; the message is the reason."""


def error_reason(error: BaseException) -> str:
    """An error's message without pySigma's " in <file>" suffix (callers know the file)."""
    return str(error.args[0]) if error.args else type(error).__name__


@dataclass(frozen=True, slots=True)
class RuleError:
    """A file, rule or filter that could not be loaded, and why."""

    path: Path
    rule_id: str | None
    title: str | None
    #: io | yaml | sigma (pySigma rejected it) | compile | duplicate-id | internal
    kind: str
    reason: str

    def __str__(self) -> str:
        what = f" rule {self.rule_id}" if self.rule_id else ""
        return f"{self.path}{what}: {self.kind}: {self.reason}"
