"""A cache of parsed rule files: the YAML documents of each file, keyed by its content.

Parsing YAML is a quarter of loading a large rule set (SigmaHQ's ~3,700 files). The cache
keeps each file's documents as plain data (dicts, lists, strings, numbers, dates) written
with `marshal`, which can only rebuild such values and never runs code, under the
SHA-256 of the file's bytes and of the versions of everything that shapes the documents
(this format, the engine, PyYAML, pySigma's YAML loader). A changed file, or an upgrade,
is a miss; a cache file that cannot be read is ignored with a warning and rewritten.

Where: `$DETECTOR_RULE_CACHE`, else `$XDG_CACHE_HOME/detector/rules`, else
`~/.cache/detector/rules`. `DETECTOR_RULE_CACHE=off` turns the cache off.
"""

from __future__ import annotations

import hashlib
import logging
import marshal
import os
import tempfile
from datetime import date, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import detector

log = logging.getLogger(__name__)

#: Bumped when what is cached, or how, changes.
CACHE_FORMAT = "1"
#: `DETECTOR_RULE_CACHE` values that turn the cache off.
OFF = frozenset({"off", "0", "false", "no"})
#: YAML never gives tuples, so a tuple in the cache is a tagged value marshal cannot hold.
_DATE, _DATETIME = "date", "datetime"


class DocumentCache:
    """Parsed YAML documents of rule files, one cache file per file content."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._salt = "\0".join(
            [CACHE_FORMAT, detector.__version__, version("pyyaml"), version("pysigma")]
        ).encode()

    @classmethod
    def default(cls) -> DocumentCache | None:
        """The cache the environment asks for (None when it is turned off)."""
        configured = os.environ.get("DETECTOR_RULE_CACHE", "")
        if configured.strip().lower() in OFF:
            return None
        if configured:
            return cls(Path(configured))
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        return cls(Path(base) / "detector" / "rules")

    def _path(self, content: bytes) -> Path:
        digest = hashlib.sha256(self._salt + b"\0" + content).hexdigest()
        return self.directory / digest[:2] / f"{digest}.marshal"

    def get(self, content: bytes) -> list[Any] | None:
        """The documents of a file with these bytes, or None on a miss."""
        path = self._path(content)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("rule cache: cannot read %s (%s); parsing the file", path, exc)
            return None
        try:
            documents = _decode(marshal.loads(data))
        except (ValueError, EOFError, TypeError) as exc:
            log.warning("rule cache: %s is corrupt (%s); parsing the file", path, exc)
            return None
        if not isinstance(documents, list):
            log.warning("rule cache: %s is corrupt (not a list); parsing the file", path)
            return None
        return documents

    def put(self, content: bytes, documents: list[Any]) -> None:
        """Keep the documents of a file with these bytes; values marshal cannot hold (an
        unusual YAML tag) leave the file uncached, and a write failure is only logged."""
        try:
            data = marshal.dumps(_encode(documents))
        except ValueError:
            return
        path = self._path(content)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as handle:
                handle.write(data)
            os.replace(handle.name, path)  # readers never see half a file
        except OSError as exc:
            log.warning("rule cache: cannot write %s (%s)", path, exc)


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
