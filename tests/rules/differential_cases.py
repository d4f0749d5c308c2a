"""Rules for every modifier of the Sigma modifiers appendix v2.1 (and the other parts of
detections), each with records close to its values: matches, near misses, other letter
cases, other types, missing fields and lists. Generated from a seeded random generator, so
a run is reproducible and a failure names a case that can be replayed.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.rules.differential_reference import DASHES, Wildcard, tokenize

Event = dict[str, Any]

# Characters near misses are made of: SQL LIKE and GLOB metacharacters, Sigma wildcards
# and escapes, dashes, and letters whose case folding is not ASCII's.
ALPHABET = "abcxyzABC019 .-/*?\\%_'[]\u2013éÉßẞİıσςΣKſ"


@dataclass(frozen=True)
class RuleCase:
    """A rule (its detection section) and the records it is checked on."""

    family: str
    detection: dict[str, Any]
    events: tuple[Event, ...]
    placeholders: dict[str, list[str]] = field(default_factory=dict)
    #: SQLite columns of NUMERIC affinity (for the comparison modifiers)
    numeric: bool = False


def _recase(text: str, rng: random.Random) -> str:
    choice = rng.randrange(5)
    if choice == 0:
        return text
    if choice == 1:
        return text.upper()
    if choice == 2:
        return text.lower()
    if choice == 3:
        return text.swapcase()
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in text)


def _witness(raw: str, rng: random.Random) -> str:
    """A text the Sigma string matches (wildcards filled in), in a random letter case."""
    pieces = []
    for token in tokenize(raw):
        if token is Wildcard.MULTI:
            pieces.append(rng.choice(["", "z", "Zq*", "%_"]))
        elif token is Wildcard.SINGLE:
            pieces.append(rng.choice("qQ?*éİ"))
        else:
            pieces.append(str(token))
    return _recase("".join(pieces), rng)


def _mutate(text: str, rng: random.Random) -> str:
    """A near miss: one character inserted, dropped or replaced, or text added around."""
    position = rng.randrange(len(text) + 1)
    char = rng.choice(ALPHABET)
    edits: list[Callable[[], str]] = [
        lambda: text[:position] + char + text[position:],
        lambda: text[:position] + text[position + 1 :],
        lambda: text[:position] + char + text[position + 1 :],
        lambda: char + text,
        lambda: text + char,
        lambda: f" {text} ",
        lambda: text[: len(text) // 2],
    ]
    return rng.choice(edits)()


def near(raws: Iterable[str], rng: random.Random, count: int) -> list[str]:
    """`count` texts around the Sigma strings: witnesses and near misses of them."""
    pool = list(raws)
    texts = []
    for _ in range(count):
        text = _witness(rng.choice(pool), rng)
        for _ in range(rng.choice([0, 0, 1, 2])):
            text = _mutate(text, rng)
        texts.append(text)
    return texts


def place(name: str, values: Iterable[Any], rng: random.Random, lists: bool = True) -> list[Event]:
    """Records holding each value in field `name`, plus an absent field, a null and lists."""
    values = list(values)
    events: list[Event] = [{name: value} for value in values]
    events += [{}, {name: None}, {name: 7}, {name: ""}]
    if lists and values:
        events += [
            {name: [rng.choice(values), rng.choice(values)]},
            {name: ["unrelated", rng.choice(values)]},
            {name: [["unrelated"], [rng.choice(values)]]},
            {name: []},
        ]
    return events


def _string_cases(
    family: str, modifier: str, values: list[str], rng: random.Random
) -> list[RuleCase]:
    """One rule per value and a rule with all of them as a list, for one modifier chain."""
    key = f"f{modifier}"
    cases = []
    for detection_values in [*([v] for v in values), values[:4]]:
        value: Any = detection_values[0] if len(detection_values) == 1 else detection_values
        texts = near(detection_values, rng, 40)
        events = place("f", texts, rng)
        cases.append(RuleCase(family, {"sel": {key: value}, "condition": "sel"}, tuple(events)))
    return cases


# Values of the string families: wildcards, escapes (a backslash before a wildcard, before
# another backslash, before a plain character, at the end), and characters SQL gives a
# meaning to (LIKE's % and _, GLOB's [, the quote).
STRINGS = [
    "cmd.exe",
    "a*b",
    "a?c",
    "x\\*y",
    "x\\?y",
    "C:\\Windows\\*",
    "\\\\server\\share",
    "tab\\\\*",
    "three\\\\\\*",
    "four\\\\\\\\",
    "end\\",
    "100%_done",
    "it's",
    "[ab]",
    "*",
    "?",
    "",
    "Évil",
    "straße",
    "σίσυφος",
    "İd",
    "Kelvin",
]


def plain(rng: random.Random) -> list[RuleCase]:
    return _string_cases("plain", "", STRINGS, rng)


def plain_scalars(rng: random.Random) -> list[RuleCase]:
    """Numbers and booleans as rule values; records hold them as numbers, text and lists."""
    texts = ["5", "5.0", "05", " 5", "+5", "-5", "1.5", "1.50", "true", "TRUE", "false", "1", "0"]
    typed: list[Any] = [5, 5.0, -5, 1.5, True, False, 0, 1, 50, 15]
    cases = []
    for value in [5, 1.5, -5, True, False, 0]:
        events = place("f", texts + typed, rng)
        cases.append(
            RuleCase("plain number/bool", {"sel": {"f": value}, "condition": "sel"}, tuple(events))
        )
    return cases


def contains(rng: random.Random) -> list[RuleCase]:
    return _string_cases("contains", "|contains", STRINGS, rng)


def startswith(rng: random.Random) -> list[RuleCase]:
    return _string_cases("startswith", "|startswith", STRINGS, rng)


def endswith(rng: random.Random) -> list[RuleCase]:
    return _string_cases("endswith", "|endswith", STRINGS, rng)


def cased(rng: random.Random) -> list[RuleCase]:
    values = ["Admin", "a*B", "C:\\Windows\\*", "x\\?Y", "[Ab]", "Évil", "σς", "100%_Done"]
    cases = []
    for chain in ("|cased", "|contains|cased", "|startswith|cased", "|endswith|cased"):
        cases += _string_cases("cased", chain, values, rng)[:-1]
    return cases


def all_(rng: random.Random) -> list[RuleCase]:
    """`|all` links the values with AND; records combine them in any order."""
    groups = [["alpha", "beta"], ["-a", "/b", "c*d"], ["x?z", "100%"], ["Évil", "ΣΑ"]]
    cases = []
    for chain in ("|contains|all", "|startswith|all", "|endswith|all", "|all"):
        for group in groups:
            texts = []
            for _ in range(30):
                size = len(group) if rng.random() < 0.5 else rng.randrange(len(group))
                chosen = rng.sample(group, size)
                text = "".join(_witness(v, rng) + rng.choice(["", " ", "-"]) for v in chosen)
                texts.append(_mutate(text, rng) if rng.random() < 0.2 else text)
            events = place("f", texts, rng)
            events.append({"f": [_witness(v, rng) for v in group]})
            events.append({"f": [_witness(v, rng) for v in group[:-1]]})
            detection = {"sel": {f"f{chain}": group}, "condition": "sel"}
            cases.append(RuleCase("all", detection, tuple(events)))
    return cases


# Values of `f` for the exists and null families, and of the field beside it.
PRESENCE: list[Any] = [None, "", " ", "null", "x", 0, False, [], [None], [""], {"k": 1}]


def _presence_events(rng: random.Random) -> list[Event]:
    events: list[Event] = [{}, {"g": "y"}, {"g": "Y"}, {"g": "n"}]
    for value in PRESENCE:
        events += [{"f": value}, {"f": value, "g": rng.choice(["y", "Y", "x", "n", None])}]
        events += [{"g": rng.choice(["y", "x"]), "f": value, "h": rng.choice(["", None])}]
    return events


def exists(rng: random.Random) -> list[RuleCase]:
    events = _presence_events(rng)
    cases = []
    for expected in (True, False):
        for detection in (
            {"sel": {"f|exists": expected}, "condition": "sel"},
            {"sel": {"f|exists": expected, "g": "y"}, "condition": "sel"},
            {"sel": {"f|exists": expected}, "condition": "not sel"},
            {"sel": {"g": "y"}, "opt": {"h|exists": expected}, "condition": "sel and not opt"},
        ):
            cases.append(RuleCase("exists", detection, tuple(events)))
    return cases


def neq(rng: random.Random) -> list[RuleCase]:
    cases = []
    items: list[tuple[str, str | list[str]]] = [
        ("f|neq", "Admin"),
        ("f|neq", ["alpha", "beta*"]),
        ("f|contains|neq", "evil"),
        ("f|neq", "a?c"),
        ("f|neq", ""),
        ("f|neq|cased", "Admin"),
    ]
    for key, value in items:
        raws = value if isinstance(value, list) else [value]
        events = place("f", near(raws, rng, 40), rng)
        events += [{"f": "x", "g": "y"}, {"g": "y"}]
        for detection in (
            {"sel": {key: value}, "condition": "sel"},
            {"sel": {"g": "y", key: value}, "condition": "sel"},
        ):
            cases.append(RuleCase("neq", detection, tuple(events)))
    return cases


def windash(rng: random.Random) -> list[RuleCase]:
    """Command-line flags and dashes elsewhere, written with each of the five characters."""
    values = [" -verb", "/c ", "-a-b", "x-y", "\u2013flag", "--long", "a /b", "-"]
    cases = []
    for chain in ("|windash|contains", "|windash"):
        for value in values:
            texts = []
            for _ in range(30):
                text = "".join(rng.choice(DASHES) if c in DASHES else c for c in value)
                text = _recase(text, rng)
                if chain.endswith("contains"):
                    text = rng.choice(["", "cmd", "cmd "]) + text + rng.choice(["", " x"])
                texts.append(_mutate(text, rng) if rng.random() < 0.15 else text)
            events = place("f", texts, rng, lists=False)
            detection = {"sel": {f"f{chain}": value}, "condition": "sel"}
            cases.append(RuleCase("windash", detection, tuple(events)))
    return cases


# Patterns of the flavor the appendix defines, each with texts it matches in some mode.
PATTERNS = {
    "^ab.c$": ["abxc", "ab\nc", "ABXC"],
    "a[b-d]+e": ["xabbde", "ABDE", "ae"],
    "^(foo|bar)?baz{2,3}$": ["bazz", "foobazzz", "BARBAZZ", "bazzzz", "bazz\n"],
    "[^a-z]x": ["1x", "ax", "Xx"],
    "^line$": ["line", "first\nline\nlast", "first\nLINE", "line\n"],
    "start.end": ["start.end", "start\nend", "START\nEND"],
    "Evil": ["an Evil one", "evil", "EVIL"],
    "^É.?$": ["É", "é!", "É\n"],
}


def regex(rng: random.Random) -> list[RuleCase]:
    """Every pattern with and without the i, m, s flags, on its texts and near misses."""
    cases = []
    for flags in ("", "|i", "|m", "|s", "|i|m|s"):
        for pattern, examples in PATTERNS.items():
            texts = [_recase(rng.choice(examples), rng) for _ in range(25)]
            texts += [_mutate(rng.choice(examples), rng) for _ in range(15)]
            events = place("f", texts, rng)
            detection = {"sel": {f"f|re{flags}": pattern}, "condition": "sel"}
            cases.append(RuleCase(f"re{flags}", detection, tuple(events)))
    return cases


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


ENCODINGS: dict[str, Callable[[str], bytes]] = {
    "": lambda text: text.encode(),
    "|wide": lambda text: text.encode("utf-16-le"),
    "|utf16le": lambda text: text.encode("utf-16-le"),
    "|utf16be": lambda text: text.encode("utf-16-be"),
    # the appendix: "Prepends a byte order mark and encodes UTF16, e.g. cmd > FF FE 63 00 ..."
    "|utf16": lambda text: b"\xff\xfe" + text.encode("utf-16-le"),
}


def _encoded_events(value: str, encode: Callable[[str], bytes], rng: random.Random) -> list[Event]:
    """Base64 of the value in every encoding, at every offset, and of near misses."""
    texts = []
    for _ in range(36):
        text = value if rng.random() < 0.6 else _mutate(value, rng)
        chosen = encode if rng.random() < 0.6 else rng.choice(list(ENCODINGS.values()))
        data = chosen(text)
        if rng.random() < 0.7:
            data = rng.randbytes(rng.randrange(6)) + data + rng.randbytes(rng.randrange(4))
        encoded = _b64(data)
        texts.append(_recase(encoded, rng) if rng.random() < 0.1 else encoded)
    return place("f", texts, rng, lists=False)


def base64_(rng: random.Random) -> list[RuleCase]:
    cases = []
    for chain in ("|base64", "|base64|contains", "|base64|startswith"):
        for value in ("cmd", "powershell -e", "ab", "Évil"):
            events = _encoded_events(value, ENCODINGS[""], rng)
            detection = {"sel": {f"f{chain}": value}, "condition": "sel"}
            cases.append(RuleCase("base64", detection, tuple(events)))
    return cases


def base64offset(rng: random.Random) -> list[RuleCase]:
    cases = []
    for value in ("cmd", "http://", "Invoke-Expression", "abcd", "Évil"):
        events = _encoded_events(value, ENCODINGS[""], rng)
        detection = {"sel": {"f|base64offset|contains": value}, "condition": "sel"}
        cases.append(RuleCase("base64offset", detection, tuple(events)))
    return cases


def utf16(rng: random.Random) -> list[RuleCase]:
    """Each UTF-16 modifier under base64offset (as SigmaHQ uses them) and under base64."""
    cases = []
    for encoding in ("|wide", "|utf16le", "|utf16be", "|utf16"):
        for value in ("cmd", "Invoke-Mimikatz", "ab"):
            for chain in (f"{encoding}|base64offset|contains", f"{encoding}|base64"):
                events = _encoded_events(value, ENCODINGS[encoding], rng)
                detection = {"sel": {f"f{chain}": value}, "condition": "sel"}
                cases.append(RuleCase(encoding.strip("|"), detection, tuple(events)))
    return cases


NUMERIC_TEXTS = [
    "5",
    "5.0",
    "4.999",
    "5.001",
    "05",
    " 5",
    "+5",
    ".5",
    "5.",
    "1e1",
    "-0",
    "abc",
    "",
    "5abc",
]


def comparisons(rng: random.Random) -> list[RuleCase]:
    cases = []
    for modifier in ("lt", "lte", "gt", "gte"):
        for bound in (5, 2.5, -1, 0):
            typed: list[Any] = [bound, bound - 1, bound + 1, bound - 0.5, bound + 0.5, True, False]
            typed += [rng.randint(-10, 10) for _ in range(8)] + [
                rng.uniform(-10, 10) for _ in range(4)
            ]
            events = place("f", NUMERIC_TEXTS + typed + [str(bound), str(bound + 1)], rng)
            events.append({"f": [bound - 3, bound + 3]})
            detection = {"sel": {f"f|{modifier}": bound}, "condition": "sel"}
            cases.append(RuleCase(modifier, detection, tuple(events), numeric=True))
    return cases


def neq_numbers(rng: random.Random) -> list[RuleCase]:
    events = place("f", [*NUMERIC_TEXTS, 5, 5.0, 4, 6, -5], rng)
    detection = {"sel": {"f|neq": 5}, "condition": "sel"}
    return [RuleCase("neq", detection, tuple(events), numeric=True)]


TIMES = [
    "2024-06-15T23:07:09Z",
    "2024-06-15T23:07:09.123456Z",
    "2024-06-15 23:07:09",
    "2024-06-15T23:59:59+05:30",
    "2024-06-16T00:00:00Z",
    "2024-06-15T00:30:00-02:00",
    "2024-12-30T10:00:00Z",
    "2021-01-01T10:00:00Z",
    "2020-12-31T23:30:00Z",
    "2024-02-29T12:00:00Z",
    "2024-01-31T05:05:05Z",
    "2023-01-01T00:00:00+00:00",
    "2024-06-15",
    "23:07:09",
    "not a time",
    "2024-13-01T00:00:00Z",
]


def time_parts(rng: random.Random) -> list[RuleCase]:
    cases = []
    rules = [
        ("minute", 7),
        ("minute", 30),
        ("hour", 23),
        ("hour", 5),
        ("day", 15),
        ("day", 31),
        ("week", 1),
        ("week", 53),
        ("week", 24),
        ("month", 6),
        ("month", 2),
        ("year", 2024),
        ("year", 2020),
    ]
    for part, value in rules:
        for chain in (f"|{part}", f"|{part}|gte", f"|{part}|lt"):
            events = place("ts", [*TIMES, 1718492829, 1718492829000, "1718492829"], rng)
            detection = {"sel": {f"ts{chain}": value}, "condition": "sel"}
            cases.append(RuleCase(part, detection, tuple(events)))
    return cases


ADDRESSES = [
    "10.0.0.0",
    "10.3.255.255",
    "10.4.0.0",
    "9.255.255.255",
    "10.1.2.3",
    "10.1.2.4",
    "192.168.1.77",
    "192.168.2.1",
    " 10.1.2.3",
    "10.1.2.3/32",
    "010.1.2.3",
    "10.1.2",
    "::ffff:10.1.2.3",
    "2001:db8::1",
    "2001:DB8:7fff:ffff::",
    "2001:db8:8000::",
    "2001:0db8:0000:0000:0000:0000:0000:0001",
    "2001:db9::1",
    "fe80::1",
    "fe80::1%eth0",
    "febf:ffff::1",
    "fec0::1",
    "::1",
    "::2",
    "not an address",
]


def cidr(rng: random.Random) -> list[RuleCase]:
    cases = []
    for value in (
        "10.0.0.0/14",
        "10.1.2.3/32",
        "192.168.1.0/24",
        "0.0.0.0/0",
        "2001:db8::/33",
        "fe80::/10",
        "::1/128",
        ["10.0.0.0/8", "2001:db8::/32"],
    ):
        events = place("ip", [*ADDRESSES, 167838211], rng)
        cases.append(
            RuleCase("cidr", {"sel": {"ip|cidr": value}, "condition": "sel"}, tuple(events))
        )
    return cases


PLACEHOLDERS = {"hosts": ["srv-*", "DC01", "a?c"], "admins": ["root", "Admin%x", "x\\*y"]}


def expand(rng: random.Random) -> list[RuleCase]:
    """Placeholders from configured values (which may hold wildcards), escaped percent signs."""
    cases = []
    for key, value in [
        ("f|expand", "%hosts%"),
        ("f|expand", "%admins%"),
        ("f|expand", "\\%plain%hosts%"),
        ("f|expand", "pre-%admins%-post"),
        ("f|expand", "C:\\\\%hosts%"),
        ("f|expand", "%hosts%.%admins%"),
        ("f|expand|contains", "%admins%"),
        ("f|expand|endswith", "@%hosts%"),
        ("f", "%hosts%"),
    ]:
        expanded = [
            value.replace("%hosts%", h).replace("%admins%", a).replace("\\%", "%")
            for h in PLACEHOLDERS["hosts"]
            for a in PLACEHOLDERS["admins"]
        ]
        texts = near([*expanded, value], rng, 40)
        texts += ["%hosts%", "%plain%hosts%", "%plainDC01", "C:\\DC01", "C:%hosts%", "C:\\%hosts%"]
        events = place("f", texts, rng)
        detection = {"sel": {key: value}, "condition": "sel"}
        cases.append(RuleCase("expand", detection, tuple(events), placeholders=PLACEHOLDERS))
    return cases


def fieldref(rng: random.Random) -> list[RuleCase]:
    """Pairs of fields whose values are equal, prefixes, suffixes or parts of each other."""
    pairs = []
    for _ in range(60):
        other = rng.choice(["alice", "Bob", "a%b", "x_y", "c:\\dir", "Évil", "*", "12"])
        own = rng.choice(
            [
                other,
                _recase(other, rng),
                other + "x",
                "x" + other,
                "x" + other + "x",
                _mutate(other, rng),
                "alice",
            ]
        )
        pairs.append((own, other))
    events: list[Event] = [{"f": own, "g": other} for own, other in pairs]
    events += [{"f": "alice"}, {"g": "alice"}, {"f": "alice", "g": None}, {"f": 12, "g": "12"}]
    events += [{"f": ["bob", "alice"], "g": "ALICE"}, {"f": "alice", "g": ["bob", "alice"]}, {}]
    cases = []
    for chain in (
        "|fieldref",
        "|fieldref|startswith",
        "|fieldref|endswith",
        "|fieldref|contains",
        "|fieldref|neq",
    ):
        detection = {"sel": {f"f{chain}": "g"}, "condition": "sel"}
        cases.append(RuleCase("fieldref", detection, tuple(events)))
    return cases


def null(rng: random.Random) -> list[RuleCase]:
    events = _presence_events(rng)
    cases = []
    for detection in (
        {"sel": {"f": None}, "condition": "sel"},
        {"sel": {"f": None}, "condition": "not sel"},
        {"sel": {"f": ""}, "condition": "sel"},
        {"sel": {"f": None, "g": "y"}, "condition": "sel"},
        {"sel": {"g": "y", "h": None}, "condition": "sel"},
        {
            "main": {"g": "y"},
            "empty1": {"f": ""},
            "empty2": {"f": None},
            "condition": "main and 1 of empty*",
        },
    ):
        cases.append(RuleCase("null", detection, tuple(events)))
    return cases


def lists(rng: random.Random) -> list[RuleCase]:
    """Value lists (OR), lists of maps (OR) and record fields that hold lists."""
    cases = []
    values = ["admin", "root*", "?ser", "svc\\*"]
    texts = near(values, rng, 30)
    events: list[Event] = [{"f": t} for t in texts]
    events += [{"f": rng.sample(texts, rng.randrange(4))} for _ in range(30)]
    events += [{"f": [[t] for t in rng.sample(texts, 2)]} for _ in range(5)]
    detections: list[dict[str, Any]] = [
        {"sel": {"f": values}, "condition": "sel"},
        {"sel": {"f|all": ["admin", "root*"]}, "condition": "sel"},
        {"sel": {"f|contains|all": ["adm", "ro"]}, "condition": "sel"},
        {"sel": [{"f": "admin"}, {"f|startswith": "ro"}], "condition": "sel"},
        {"sel": {"f|neq": ["admin", "root"]}, "condition": "sel"},
    ]
    for detection in detections:
        cases.append(RuleCase("lists", detection, tuple(events)))
    return cases


def keywords(rng: random.Random) -> list[RuleCase]:
    """Field-less values, searched in every value of the record (not in its keys)."""
    words = ["evil", "mal*ware", "a?c", "x\\*y", "42", "true", "Évil", "100%"]
    texts = near(words, rng, 40)
    events: list[Event] = []
    for _ in range(60):
        event: Event = {}
        for name in rng.sample(["f", "g", "h", "evil"], rng.randrange(1, 4)):
            roll = rng.random()
            if roll < 0.5:
                event[name] = rng.choice(texts)
            elif roll < 0.65:
                event[name] = {"inner": rng.choice(texts), "n": rng.choice([42, 420, 4.2])}
            elif roll < 0.8:
                event[name] = [rng.choice(texts), rng.choice([True, False, None, 1])]
            else:
                event[name] = rng.choice([42, 142, True, False, None])
        events.append(event)
    cases = []
    for detection in (
        {"keywords": words[:4], "condition": "keywords"},
        {"keywords": ["42", "true"], "condition": "keywords"},
        {"keywords": ["Évil", "100%"], "condition": "keywords"},
        {"keywords": {"|all": ["evil", "mal"]}, "condition": "keywords"},
        {"keywords": ["evil"], "sel": {"g|contains": "a"}, "condition": "keywords and not sel"},
    ):
        cases.append(RuleCase("keywords", detection, tuple(events)))
    return cases


def conditions(rng: random.Random) -> list[RuleCase]:
    """Conditions over several identifiers: precedence, negation, `x of` and underscores."""
    identifiers: dict[str, Any] = {
        "sel_a": {"f|startswith": "a"},
        "sel_b": {"g|contains": "b"},
        "filter_x": {"h": "x"},
        "filter_y": [{"h": "y"}, {"f": "ay"}],
        "_hidden": {"f": "zz"},
    }
    events: list[Event] = []
    for _ in range(80):
        event: Event = {}
        for name, options in (
            ("f", ["a1", "ay", "zz", "b"]),
            ("g", ["abc", "xyz"]),
            ("h", ["x", "y", "X"]),
        ):
            if rng.random() < 0.8:
                event[name] = rng.choice(options)
        events.append(event)
    cases = []
    for condition in (
        "sel_a and not filter_x",
        "not sel_a or sel_b and filter_x",
        "not (sel_a or sel_b)",
        "sel_a and (sel_b or not filter_x)",
        "1 of sel_*",
        "all of sel_*",
        "1 of sel_* and not 1 of filter*",
        "all of filter_*",
        "1 of them",
        "all of them",
        "not 1 of them",
        "not not sel_a",
        "_hidden",
        "1 of *",
    ):
        cases.append(RuleCase("conditions", {**identifiers, "condition": condition}, tuple(events)))
    cases.append(
        RuleCase("conditions", {**identifiers, "condition": ["sel_a", "filter_x"]}, tuple(events))
    )
    return cases


FAMILIES: list[Callable[[random.Random], list[RuleCase]]] = [
    plain,
    plain_scalars,
    contains,
    startswith,
    endswith,
    all_,
    exists,
    cased,
    neq,
    neq_numbers,
    windash,
    regex,
    base64_,
    base64offset,
    utf16,
    comparisons,
    time_parts,
    cidr,
    expand,
    fieldref,
    null,
    lists,
    keywords,
    conditions,
]


def all_cases(seed: int) -> list[RuleCase]:
    rng = random.Random(seed)
    return [case for family in FAMILIES for case in family(rng)]
