"""What a record must hold for a rule to match it: a necessary condition per rule.

The rule index checks a record only against the rules whose necessary condition it
meets. The condition is read off the compiled plan (what the matcher runs, filters
included) as clauses that must all hold, each a set of atoms one of which must hold:

- `(field, TEXT, text)`: the field's value, or one element of it, has this lower-cased
  text (`fields.text_of`): a case-insensitive plain string;
- `(field, NUMBER, number)`: the field's value, or one element, reads as this number
  (`fields.as_number`): a Sigma number;
- `(field, SPEC, spec)`: the field's value, or one element of it, has a lower-cased text
  that passes `spec` (`values.TextSpec`): case-insensitive wildcards, `|contains`,
  `|startswith`, `|endswith`;
- `(field, PRESENT, None)`: the field is in the record, whatever its value: a
  comparison (`|lt`...) or `|exists: true`.

Only what the plan proves is kept: a negation, an opaque test (keywords, field
references, `null`, `|re`, `|cidr`) or an OR with a branch that proves nothing gives no
clause, and a rule without clauses is checked against every record. A record meeting
the condition may still not match; a record that matches always meets it.
"""

from __future__ import annotations

from collections.abc import Sequence

from detector.rules.plan import AllOf, AnyOf, Compare, Exists, LowerText, NumberIn, Plan
from detector.rules.values import TextSpec

#: atom kinds
TEXT, NUMBER, PRESENT, SPEC = 0, 1, 2, 3

Atom = tuple[str, int, str | int | float | TextSpec | None]
#: one of its atoms must hold
Clause = frozenset[Atom]
#: every clause must hold; empty: nothing is required
Requirement = tuple[Clause, ...]


def requirement(plan: Plan) -> Requirement:
    """The clauses a record must meet for `plan` to match it."""
    if isinstance(plan, LowerText):
        spec = plan.spec
        if spec.equal and not (
            spec.any or spec.prefixes or spec.suffixes or spec.substrings or spec.pattern
        ):
            return (frozenset((plan.field, TEXT, text) for text in spec.equal),)
        return (frozenset({(plan.field, SPEC, spec)}),)
    if isinstance(plan, NumberIn):
        return (frozenset((plan.field, NUMBER, number) for number in plan.numbers),)
    if isinstance(plan, Compare):
        return (frozenset({(plan.field, PRESENT, None)}),)
    if isinstance(plan, Exists):
        return (frozenset({(plan.field, PRESENT, None)}),) if plan.expected else ()
    if isinstance(plan, AllOf):
        clauses: dict[Clause, None] = {}
        for child in plan.children:
            clauses.update(dict.fromkeys(requirement(child)))
        return tuple(clauses)
    if isinstance(plan, AnyOf):
        return _either([requirement(child) for child in plan.children])
    return ()  # Not, Opaque, TextCheck: nothing proven


def _either(branches: Sequence[Requirement]) -> Requirement:
    """Clauses every branch implies: each is the union of one clause from each branch.

    Per field that every branch has a clause on (and only on), the union of those
    clauses; where there is none, the union of each branch's first clause.
    """
    if not branches or any(not branch for branch in branches):
        return ()
    result: list[Clause] = []
    for name in sorted(_single_field_names(branches[0])):
        picked = [_on_field(branch, name) for branch in branches]
        if all(clause is not None for clause in picked):
            result.append(frozenset().union(*picked))  # type: ignore[arg-type]
    if not result:
        result.append(frozenset().union(*(branch[0] for branch in branches)))
    return tuple(result)


def _single_field_names(branch: Requirement) -> set[str]:
    """The fields that some clause of `branch` is on alone."""
    names = set()
    for clause in branch:
        fields = {atom[0] for atom in clause}
        if len(fields) == 1:
            names |= fields
    return names


def _on_field(branch: Requirement, name: str) -> Clause | None:
    """The smallest clause of `branch` on `name` alone."""
    found = [clause for clause in branch if all(atom[0] == name for atom in clause)]
    return min(found, key=len) if found else None
