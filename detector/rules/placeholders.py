"""Resolving `%name%` placeholders (the `expand` modifier) from configured value lists.

Mirrors pySigma's ValueListPlaceholderTransformation: each configured value is read as
a Sigma string (so it may carry wildcards) and the expanded values are OR-linked. A
placeholder without configured values makes the rule uncompilable, as the specification
requires of tools that cannot resolve it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from sigma.types import (
    Placeholder,
    SigmaCasedString,
    SigmaExpansion,
    SigmaRegularExpression,
    SigmaString,
    SigmaType,
)

from detector.rules.errors import RuleCompileError

Placeholders = Mapping[str, Sequence[str | int | float]]


def resolve_placeholders(value: SigmaType, placeholders: Placeholders) -> SigmaType:
    """`value` with every placeholder replaced by an OR-expansion of its configured values."""
    if isinstance(value, SigmaExpansion):
        return SigmaExpansion([resolve_placeholders(v, placeholders) for v in value.values])
    if not isinstance(value, SigmaString | SigmaRegularExpression):
        return value
    if not value.contains_placeholder():
        return value

    def replacements(placeholder: Placeholder) -> Iterator[SigmaString]:
        configured = placeholders.get(placeholder.name)
        if configured is None:
            raise RuleCompileError(f"placeholder %{placeholder.name}% has no configured values")
        if isinstance(configured, str) or not configured:
            raise RuleCompileError(
                f"placeholder %{placeholder.name}% must be configured as a non-empty list"
            )
        for item in configured:
            yield SigmaString(str(item))

    expanded: list[SigmaType]
    if isinstance(value, SigmaRegularExpression):
        expanded = list(value.replace_placeholders(replacements))
    elif isinstance(value, SigmaCasedString):
        expanded = [
            SigmaCasedString.from_sigma_string(s) for s in value.replace_placeholders(replacements)
        ]
    else:
        expanded = list(value.replace_placeholders(replacements))
    return SigmaExpansion(expanded)
