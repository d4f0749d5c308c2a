"""Files that survive a crash: appends and rewrites are on disk before the call returns.

An append is one write of whole lines, flushed and fsynced. `AppendLog.write` instead
buffers lines for a later `flush` and `fsync` (group commit: one fsync for many lines,
which may run in another thread while the owner writes on). A crash can only cut the
last, unacknowledged append short; `AppendLog` drops such a cut line when it opens the
file, so the next append starts on a line of its own. A rewrite goes to a temporary
file that replaces the old one by an atomic rename, then the directory is fsynced so
the rename itself survives.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO


def fsync_directory(path: Path) -> None:
    """Make the entries of `path` (a new file, a rename) durable."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sync(handle: IO[bytes]) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def write_atomically(path: Path, lines: Iterable[bytes]) -> None:
    """Replace `path` with `lines`: afterwards the file is either all old or all new."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as handle:
        for line in lines:
            handle.write(line + b"\n")
        _sync(handle)
    os.replace(temporary, path)
    fsync_directory(path.parent)


def _drop_cut_line(path: Path) -> None:
    """Truncate a last line that a crash left without its newline."""
    with path.open("r+b") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return
        handle.seek(0)
        data = handle.read()
        handle.truncate(data.rfind(b"\n") + 1)
        _sync(handle)


class AppendLog:
    """An append-only file of lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        created = not path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        if not created:
            _drop_cut_line(path)
        self._handle: IO[bytes] = path.open("ab")
        if created:
            fsync_directory(path.parent)

    def append(self, *lines: bytes) -> None:
        """Write `lines`; they are on disk when this returns."""
        self.write(*lines)
        _sync(self._handle)

    def write(self, *lines: bytes) -> None:
        """Buffer `lines`: on disk only after a `flush` and an `fsync`."""
        self._handle.write(b"".join(line + b"\n" for line in lines))

    def flush(self) -> None:
        """Hand the buffered lines to the operating system (the owner's thread only)."""
        self._handle.flush()

    def fsync(self) -> None:
        """Make what was flushed durable; safe in another thread while the owner writes."""
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()
