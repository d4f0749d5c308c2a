"""The rule index of one route: a record is checked only against the rules whose
necessary condition (`requirements`) it meets.

Each rule is indexed by its best clause (`_cost`) and by its other clauses on fields
read anyway, so few fields are read per record. Every clause has a bit; per record one
generated function reads those fields and returns the bits of the clauses the record
meets; the rules whose bits are all set are the candidates, in route order (the same
rules, in the same order, as checking every rule). Candidate lists are remembered per
set of bits, since records of one kind meet the same clauses.

The generated function's text holds only names this module makes up; field names and
values reach it as constants of its globals, never as code (as in `codegen`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from detector.rules.compiled import CompiledRule
from detector.rules.fields import MISSING, as_number, compile_getter, iter_elements, text_of
from detector.rules.requirements import NUMBER, PRESENT, TEXT, Clause, Requirement, requirement

#: candidate lists remembered, by the clauses a record met, before starting over
_MEMO_LIMIT = 4096

Met = Callable[[Mapping[str, Any]], int]


class RuleIndex:
    """The rules of one route and the function that picks a record's candidates.

    With `attributes` (field name -> attribute of the model the records are made from,
    as `Event.to_record` makes them), the candidates are picked from the model's
    attribute values, None standing for an absent field, when every field read is one
    of them: most events then need no record at all.
    """

    def __init__(
        self,
        rules: list[CompiledRule],
        indexed: bool = True,
        attributes: Mapping[str, str] | None = None,
    ) -> None:
        self.rules = rules
        #: the fields read per record, most read first
        self.fields: tuple[str, ...] = ()
        self._met: Met | None = None
        self._needs: list[int] = []
        self._memo: dict[int, list[CompiledRule]] = {}
        #: True when `candidates` reads attribute values (see `attributes`)
        self.reads_attributes = False
        if indexed and rules:
            self._build([requirement(rule.detection.plan) for rule in rules], attributes)

    def _build(self, requirements: list[Requirement], attributes: Mapping[str, str] | None) -> None:
        readers = Counter([name for req in requirements for name in _fields(req)])
        ranked = [sorted(req, key=lambda c: _cost(c, readers)) for req in requirements]
        # each rule's best clause; then its others on fields read for those anyway
        read = {name for clauses in ranked for name in _fields(tuple(clauses[:1]))}
        bits: dict[Clause, int] = {}
        for clauses in ranked:
            chosen = clauses[:1] + [c for c in clauses[1:] if _fields((c,)) <= read]
            need = 0
            for clause in chosen:
                need |= bits.setdefault(clause, 1 << len(bits))
            self._needs.append(need)
        if not bits:
            return
        probes: dict[str, _Probe] = {}
        for clause, bit in bits.items():
            for name, kind, key in clause:
                probes.setdefault(name, _Probe(name)).add(kind, key, bit)
        self.fields = tuple(sorted(probes, key=lambda name: (-readers[name], name)))
        if attributes is not None and not set(self.fields) <= attributes.keys():
            attributes = None  # a path into a field, say: read from the record
        self.reads_attributes = attributes is not None
        self._met = _generate([probes[name] for name in self.fields], attributes)

    def candidates(self, record: Mapping[str, Any]) -> Sequence[CompiledRule]:
        """The rules `record` must be checked against, in route order. With
        `reads_attributes`, `record` is the model's attribute values instead."""
        if self._met is None:
            return self.rules
        met = self._met(record)
        found = self._memo.get(met)
        if found is None:
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            needs = zip(self.rules, self._needs, strict=True)
            found = self._memo[met] = [rule for rule, need in needs if need & met == need]
        return found


def _fields(req: Requirement) -> set[str]:
    return {atom[0] for clause in req for atom in clause}


def _cost(clause: Clause, readers: Counter[str]) -> tuple[bool, int, int]:
    """Clauses on values first, on fields more rules read (already read for others);
    then clauses on presence, of fields fewer rules read (more often absent)."""
    present = any(kind == PRESENT for _, kind, _ in clause)
    shared = min(readers[atom[0]] for atom in clause)
    return (present, shared if present else -shared, len(clause))


class _Probe:
    """One field read per record: the clause bits each of its values meets."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.texts: dict[str, int] = {}
        self.numbers: dict[int | float, int] = {}
        self.present = 0

    def add(self, kind: int, key: Any, bit: int) -> None:
        if kind == TEXT:
            self.texts[key] = self.texts.get(key, 0) | bit
        elif kind == NUMBER:
            self.numbers[key] = self.numbers.get(key, 0) | bit
        else:
            self.present |= bit

    def of_text(self, value: str) -> int:
        """The bits a string value meets beside its lower-cased text: as a number."""
        number = as_number(value)
        return 0 if number is None else self.numbers.get(number, 0)

    def of_other(self, value: Any) -> int:
        """The bits a list, number or boolean meets, element by element (as the rules
        read them)."""
        met = 0
        for element in iter_elements(value):
            if self.texts:
                text = text_of(element)
                if text is not None:
                    met |= self.texts.get(text.lower(), 0)
            if self.numbers:
                number = as_number(element)
                if number is not None:
                    met |= self.numbers.get(number, 0)
        return met


def _generate(probes: list[_Probe], attributes: Mapping[str, str] | None) -> Met:
    """One function reading every probed field once and returning the bits met: from a
    record, or, given `attributes`, from a model's attribute values (None is absent)."""
    constants: dict[str, Any] = {"MISSING": MISSING}

    def constant(value: Any) -> str:
        name = f"k{len(constants)}"
        constants[name] = value
        return name

    lines = ["def met(record):", "    m = 0"]
    for probe in probes:
        if attributes is not None:
            lines.append(f"    v = record[{constant(attributes[probe.name])}]")
            lines.append("    if v is not None:")
        else:
            lines.extend(_read(probe.name, constant))
            lines.append("    if v is not MISSING:")
        if probe.present:
            lines.append(f"        m |= {constant(probe.present)}")
        if not (probe.texts or probe.numbers):
            continue
        texts, numbers = constant(probe.texts), constant(probe.numbers)
        lines.append("        if type(v) is str:")
        if probe.texts:
            lines.append(f"            m |= {texts}.get(v.lower(), 0)")
        if probe.numbers:
            lines.append(f"            m |= {constant(probe.of_text)}(v)")
        lines.append("        elif type(v) is int:")  # the digits are its text
        if probe.texts:
            lines.append(f"            m |= {texts}.get(str(v), 0)")
        if probe.numbers:
            lines.append(f"            m |= {numbers}.get(v, 0)")
        lines.append("        elif v is not None:")
        lines.append(f"            m |= {constant(probe.of_other)}(v)")
    lines.append("    return m")
    exec(compile("\n".join(lines), "<rule index>", "exec"), constants)
    function: Met = constants["met"]
    return function


def _read(name: str, constant: Callable[[Any], str]) -> list[str]:
    """Statements setting `v` to field `name` of `record` as `fields.compile_getter`
    reads it: `outer.inner` of nested objects inline, anything else by the getter."""
    parts = name.split(".")
    if len(parts) == 1:
        return [f"    v = record.get({constant(name)}, MISSING)"]
    getter = constant(compile_getter(name))
    if len(parts) > 2:
        return [f"    v = {getter}(record)"]
    outer, inner = constant(parts[0]), constant(parts[1])
    return [
        f"    v = record.get({constant(name)}, MISSING)",
        "    if v is MISSING:",
        f"        o = record.get({outer})",
        f"        v = o.get({inner}, MISSING) if type(o) is dict else"
        f" MISSING if o is None else {getter}(record)",
    ]
