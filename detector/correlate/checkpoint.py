"""Checkpoints: the correlation state and how far the input was read, in one file.

The file is one orjson document:
`{"format": "detector.checkpoint/1", "records": N, "inputs": [...], "engine": {...}}` where
`records` counts the input records consumed (events and dead letters alike, so a resumed
run skips exactly those), `inputs` are the paths read, and `engine` is
`CorrelationEngine.snapshot()`: watermark, reorder buffer, timers, every live group's
window, suppression periods and counters, tied to the correlation rules by a fingerprint.
It is written to a temporary file beside the target and renamed over it, so a crash
leaves either the old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import gc
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

FORMAT = "detector.checkpoint/1"


@contextmanager
def gc_paused() -> Iterator[None]:
    """Building or reading a large state makes millions of containers; the cyclic
    collector would rescan them over and over (5-10x the time), and none is garbage."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from; the message is the reason."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a run was, and the engine's state there."""

    records: int
    inputs: list[str]
    engine: dict[str, Any]


def encode(checkpoint: Checkpoint) -> bytes:
    return orjson.dumps(
        {
            "format": FORMAT,
            "records": checkpoint.records,
            "inputs": checkpoint.inputs,
            "engine": checkpoint.engine,
        }
    )


def decode(data: bytes) -> Checkpoint:
    try:
        with gc_paused():
            document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CheckpointError(f"not a checkpoint: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CheckpointError(f"not a {FORMAT} checkpoint")
    records, inputs, engine = (document.get(k) for k in ("records", "inputs", "engine"))
    if type(records) is not int or not isinstance(inputs, list) or not isinstance(engine, dict):
        raise CheckpointError("damaged checkpoint: records, inputs or engine state missing")
    return Checkpoint(records, [str(path) for path in inputs], engine)


def save(path: Path, checkpoint: Checkpoint) -> None:
    """Write atomically: a temporary file in the same directory, then os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(encode(checkpoint))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load(path: Path) -> Checkpoint:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from exc
    return decode(data)
