"""The error the rule compiler raises, and how pySigma errors become reasons."""

from __future__ import annotations


class RuleCompileError(ValueError):
    """A parsed Sigma rule that this engine cannot evaluate; the message is the reason."""


def error_reason(error: BaseException) -> str:
    """An error's message without pySigma's " in <file>" suffix (callers know the file)."""
    return str(error.args[0]) if error.args else type(error).__name__
