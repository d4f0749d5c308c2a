"""Compiling a rule's condition expressions over its compiled search identifiers.

pySigma parses the condition text (without its post-processing, which would inline the
detections); this module walks that parse tree once and links the identifiers'
predicates with and/or/not. `1 of pattern` / `all of pattern` select identifiers by
`*` wildcards; `them` and every pattern that does not itself start with `_` leave out
identifiers starting with `_`, as the specification (and pySigma) do. A pattern that
selects nothing is a compile error: it is almost always a typo in the rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from sigma.conditions import (
    ConditionAND,
    ConditionIdentifier,
    ConditionItem,
    ConditionNOT,
    ConditionOR,
    ConditionSelector,
    SigmaCondition,
)
from sigma.exceptions import SigmaError

from detector.rules.errors import RuleCompileError
from detector.rules.plan import Plan, plan_all, plan_any, plan_not


def compile_conditions(
    conditions: Sequence[SigmaCondition], identifiers: Mapping[str, Plan]
) -> Plan:
    """The OR of all conditions of a rule (a list of conditions is OR-linked)."""
    compiled = []
    for condition in conditions:
        try:
            tree = condition.parse(postprocess=False)
        except SigmaError as exc:
            raise RuleCompileError(f"condition {condition.condition!r}: {exc.args[0]}") from exc
        compiled.append(_compile(tree, identifiers))
    if not compiled:
        raise RuleCompileError("rule has no condition")
    return plan_any(compiled)


def _compile(node: object, identifiers: Mapping[str, Plan]) -> Plan:
    if isinstance(node, ConditionIdentifier):
        try:
            return identifiers[node.identifier]
        except KeyError:
            raise RuleCompileError(
                f"condition names undefined search identifier {node.identifier!r}"
            ) from None
    if isinstance(node, ConditionSelector):
        names = select(node.pattern, identifiers)
        plans = [identifiers[name] for name in names]
        return plan_all(plans) if node.cond_class is ConditionAND else plan_any(plans)
    if isinstance(node, ConditionNOT):
        return plan_not(_compile(node.args[0], identifiers))
    if isinstance(node, ConditionAND | ConditionOR):
        children = [_compile(arg, identifiers) for arg in node.args]
        return plan_all(children) if isinstance(node, ConditionAND) else plan_any(children)
    kind = type(node).__name__ if isinstance(node, ConditionItem) else repr(node)
    raise RuleCompileError(f"unsupported condition element {kind}")


def select(pattern: str, identifiers: Iterable[str]) -> list[str]:
    """Identifiers (names, in the order given) a `1 of` / `all of` pattern selects."""
    if pattern == "them":
        names = [name for name in identifiers if not name.startswith("_")]
    else:
        regex = re.compile(".*".join(re.escape(piece) for piece in pattern.split("*")))
        names = [
            name
            for name in identifiers
            if regex.fullmatch(name) and (pattern.startswith("_") or not name.startswith("_"))
        ]
    if not names:
        raise RuleCompileError(f"condition pattern {pattern!r} selects no search identifier")
    return names
