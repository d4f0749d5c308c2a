"""A cache of what loading a rule file gave, keyed by the file's content.

Loading a large rule set (SigmaHQ's ~3,700 files) is parsing YAML, pySigma building its
rule objects and compiling the detections; the cache keeps, per file, the YAML documents
and, for a file of plain rules, each rule's metadata and whether it compiles
(`detector.rules.outcome`), so a load from the cache builds the rules without parsing or
compiling any (`CompiledRule` compiles a cached rule on first use).

Everything is plain data (tuples, dicts, lists, strings, numbers, bytes; dates as tagged
ISO text) written with `marshal`, which can only rebuild such values and never runs code.
The key is the SHA-256 of the file's bytes, of the load's context (the placeholder
values the rules compiled with) and of the versions of everything that shapes the
outcome: this format, the engine and the source of its rule compiler, PyYAML, pySigma.
A changed file, other placeholders, or an upgrade, is a miss; a cache file that cannot be
read is ignored with a warning and rewritten.

Where: `$DETECTOR_RULE_CACHE`, else `$XDG_CACHE_HOME/detector/rules`, else
`~/.cache/detector/rules`. `DETECTOR_RULE_CACHE=off` turns the cache off.
"""

from __future__ import annotations

import hashlib
import logging
import marshal
import os
import tempfile
from collections.abc import Callable
from datetime import date, datetime
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

import detector

log = logging.getLogger(__name__)

#: Bumped when what is cached, or how, changes.
CACHE_FORMAT = "2"
#: `DETECTOR_RULE_CACHE` values that turn the cache off.
OFF = frozenset({"off", "0", "false", "no"})
#: YAML never gives tuples, so a tuple in the documents is a tagged value.
_DATE, _DATETIME = "date", "datetime"

T = TypeVar("T")


class RuleCache:
    """What loading each rule file gave, one cache file per file content and context."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._salt = "\0".join(
            [
                CACHE_FORMAT,
                detector.__version__,
                _compiler_digest(),
                version("pyyaml"),
                version("pysigma"),
            ]
        ).encode()

    @classmethod
    def default(cls) -> RuleCache | None:
        """The cache the environment asks for (None when it is turned off)."""
        configured = os.environ.get("DETECTOR_RULE_CACHE", "")
        if configured.strip().lower() in OFF:
            return None
        if configured:
            return cls(Path(configured))
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        return cls(Path(base) / "detector" / "rules")

    def _path(self, content: bytes, context: bytes) -> Path:
        digest = hashlib.sha256(
            b"\0".join([self._salt, hashlib.sha256(context).digest(), content])
        ).hexdigest()
        return self.directory / digest[:2] / f"{digest}.marshal"

    def get(self, content: bytes, context: bytes, read: Callable[[Any], T]) -> T | None:
        """`read` of what was kept for a file with these bytes in this context, or None
        on a miss. `read` raises ValueError or TypeError for a value of the wrong shape."""
        path = self._path(content, context)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("rule cache: cannot read %s (%s); parsing the file", path, exc)
            return None
        try:
            return read(marshal.loads(data))
        except (ValueError, EOFError, TypeError) as exc:
            log.warning("rule cache: %s is corrupt (%s); parsing the file", path, exc)
            return None

    def put(self, content: bytes, context: bytes, value: Any) -> None:
        """Keep `value` (plain data) for a file with these bytes in this context; a write
        failure is only logged."""
        data = marshal.dumps(value)
        path = self._path(content, context)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as handle:
                handle.write(data)
            os.replace(handle.name, path)  # readers never see half a file
        except OSError as exc:
            log.warning("rule cache: cannot write %s (%s)", path, exc)


@cache
def _compiler_digest() -> str:
    """The SHA-256 of the rule engine's source: an edited compiler may compile a rule the
    old one refused (or the other way round), so its cached outcomes do not carry over."""
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    return digest.hexdigest()


def encode_documents(documents: list[Any]) -> bytes:
    """YAML documents as marshal bytes; ValueError for a value marshal cannot hold (an
    unusual YAML tag)."""
    return marshal.dumps(_encode(documents))


def decode_documents(data: bytes) -> list[Any]:
    """What `encode_documents` gave, back; ValueError, EOFError or TypeError if corrupt."""
    documents = _decode(marshal.loads(data))
    if not isinstance(documents, list):
        raise ValueError("not a list of documents")
    return documents


def _encode(value: Any) -> Any:
    if isinstance(value, dict):
        return {_encode(key): _encode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_encode(item) for item in value]
    if isinstance(value, datetime):
        return (_DATETIME, value.isoformat())
    if isinstance(value, date):
        return (_DATE, value.isoformat())
    if value is None or isinstance(value, str | int | float | bytes):
        return value
    raise ValueError(f"cannot cache a {type(value).__name__}")


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        return {_decode(key): _decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if isinstance(value, tuple):
        if len(value) != 2 or value[0] not in (_DATE, _DATETIME):
            raise ValueError(f"unknown tagged value {value[:1]!r}")
        tag, text = value
        return datetime.fromisoformat(text) if tag == _DATETIME else date.fromisoformat(text)
    return value
