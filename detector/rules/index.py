"""The rule index of one route: a record is checked only against the rules whose
necessary condition (`requirements`) it meets.

Each rule is indexed by its best clause (`_cost`) and by its other clauses on fields
read anyway, so few fields are read per record. Every clause has a bit; per record each
probed field is read once and gives the bits of the clauses its value meets; the rules
whose bits are all set are the candidates, in route order (the same rules, in the same
order, as checking every rule). Candidate lists are remembered per set of bits, since
records of one kind meet the same clauses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, Final

from detector.memo import remember, remember_text
from detector.rules.compiled import CompiledRule
from detector.rules.fields import MISSING, FieldReader, as_number, iter_elements, text_of
from detector.rules.requirements import (
    NUMBER,
    PRESENT,
    SPEC,
    TEXT,
    Clause,
    Requirement,
    requirement,
)
from detector.rules.values import TextSpec

#: candidate lists (and a probe's string values) remembered before starting over
_MEMO_LIMIT: Final = 4096


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
        #: the fields read per record, each with the clause bits its values meet
        self._probes: list[_Probe] = []
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
        self._probes = [probes[name] for name in self.fields]
        if attributes is not None:
            for probe in self._probes:
                probe.attribute = attributes[probe.name]

    def candidates(self, record: dict[str, Any]) -> list[CompiledRule]:
        """The rules `record` must be checked against, in route order. With
        `reads_attributes`, `record` is the model's attribute values instead."""
        if not self._probes:
            return self.rules
        met = 0
        for probe in self._probes:
            value = probe.value(record)
            if value is not MISSING:
                met |= probe.bits(value)
        found = self._memo.get(met)
        if found is None:
            needs = zip(self.rules, self._needs, strict=True)
            found = [rule for rule, need in needs if need & met == need]
            remember(self._memo, met, found, _MEMO_LIMIT)
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
        #: the bits of each text pattern (`requirements.SPEC`), each tried on a text
        self.specs: dict[TextSpec, int] = {}
        self.present = 0
        #: the model attribute that holds the field, when read from attribute values
        self.attribute: str | None = None
        self._reader = FieldReader(name)
        #: the bits of string values met before: records of one kind repeat their verbs,
        #: resources and names, and a string's bits cost a lower-cased copy to find
        self._by_text: dict[str, int] = {}
        #: the same for integers (status codes), whose text would be made each time
        self._by_integer: dict[int, int] = {}

    def add(self, kind: int, key: Any, bit: int) -> None:
        if kind == TEXT:
            self.texts[key] = self.texts.get(key, 0) | bit
        elif kind == NUMBER:
            self.numbers[key] = self.numbers.get(key, 0) | bit
        elif kind == SPEC:
            self.specs[key] = self.specs.get(key, 0) | bit
        else:
            self.present |= bit

    def value(self, record: dict[str, Any]) -> Any:
        """The field's value in `record` (`fields.FieldReader`), MISSING where
        absent; from attribute values when `attribute` is set (None is absent there)."""
        if self.attribute is not None:
            value = record[self.attribute]
            return MISSING if value is None else value
        return self._reader.read(record)

    def bits(self, value: Any) -> int:
        """The bits of the clauses a present `value` meets."""
        met = self.present
        if not (self.texts or self.numbers or self.specs):
            return met
        if type(value) is str:
            text: str = value
            known = self._by_text.get(text)
            if known is not None:
                return known
            met |= self.of_lowered(text.lower())
            if self.numbers:
                met |= self.of_text(text)
            remember_text(self._by_text, text, met, _MEMO_LIMIT)
        elif type(value) is int:  # the digits are its text
            number: int = value
            known = self._by_integer.get(number)
            if known is not None:
                return known
            if self.texts or self.specs:
                met |= self.of_lowered(str(number))
            if self.numbers:
                met |= self.numbers.get(number, 0)
            remember(self._by_integer, number, met, _MEMO_LIMIT)
        elif value is not None:
            met |= self.of_other(value)
        return met

    def of_lowered(self, text: str) -> int:
        """The bits a lower-cased text meets: as a plain string, and by each pattern."""
        met = self.texts.get(text, 0) if self.texts else 0
        if self.specs:
            for spec, bits in self.specs.items():
                if spec.holds(text):
                    met |= bits
        return met

    def of_text(self, value: str) -> int:
        """The bits a string value meets beside its lower-cased text: as a number."""
        number = as_number(value)
        return 0 if number is None else self.numbers.get(number, 0)

    def of_other(self, value: Any) -> int:
        """The bits a list, number or boolean meets, element by element (as the rules
        read them)."""
        met = 0
        for element in iter_elements(value):
            if self.texts or self.specs:
                text = text_of(element)
                if text is not None:
                    met |= self.of_lowered(text.lower())
            if self.numbers:
                number = as_number(element)
                if number is not None:
                    met |= self.numbers.get(number, 0)
        return met
