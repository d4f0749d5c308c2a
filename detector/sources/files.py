"""Streaming readers for log files: JSON lines, JSON arrays, pretty-printed JSON, text, gzip.

Memory stays bounded by the largest single record, whatever the file size. The layout
of each file is sniffed from its first bytes:
- `[` starts a JSON array: each element is a record;
- a first line that is a whole JSON value means JSON lines (text lines too, such as
  Jenkins' audit trail, go this way: every line is a record);
- otherwise (a pretty-printed object) the file is a sequence of JSON values.
Gzip is recognised by its magic bytes, not by the file name.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final, TypeAlias, cast

import orjson
from mypy_extensions import mypyc_attr

from detector.sources.records import RawRecord

_CHUNK: Final = 1 << 20  # read size of the JSON value scanner
_LINE_BLOCK = 1 << 20  # bytes of lines per block (each block is a worker's task)
_BUFFER: Final = 1 << 20  # read-ahead used to sniff a file's layout
_GZIP_MAGIC: Final = b"\x1f\x8b"
_WHITESPACE: Final = b" \t\r\n"
_NEWLINE: Final = ord("\n")
_CARRIAGE_RETURN: Final = ord("\r")
# Bytes that change the JSON scanner's state outside strings; everything else is skipped
# in bulk (a backslash matters only inside a string: `_IN_STRING`).
_STRUCTURAL: Final = re.compile(rb'["\[\]{},]')

Stream: TypeAlias = "io.BufferedReader[Any]"

#: called with the number of input bytes consumed since the last call
ProgressCallback = Callable[[int], None]


def expand_paths(paths: Iterable[str]) -> list[str]:
    """Files named, and the files under directories named (sorted, hidden ones skipped)."""
    result: list[str] = []
    for name in paths:
        if name == "-":
            result.append(name)
            continue
        path = Path(name)
        if path.is_dir():
            result.extend(
                str(p)
                for p in sorted(path.rglob("*"))
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.exists():
            result.append(name)
        else:
            raise FileNotFoundError(f"no such file or directory: {name}")
    return result


def total_size(paths: Iterable[str]) -> int | None:
    """Bytes on disk of all files (None when stdin is among them): the progress total."""
    size = 0
    for name in paths:
        if name == "-":
            return None
        size += os.path.getsize(name)
    return size


def read_paths(
    paths: Iterable[str], progress: ProgressCallback | None = None, source: str | None = None
) -> Iterator[RawRecord]:
    """Every record of every file, in file order. Directories are walked recursively."""
    # without blocks, every part is a record
    return cast(Iterator[RawRecord], read_parts(paths, progress, source, blocks=False))


def read_parts(
    paths: Iterable[str],
    progress: ProgressCallback | None = None,
    source: str | None = None,
    *,
    blocks: bool = True,
) -> Iterator[LineBlock | RawRecord]:
    """`read_paths`, with the lines of a JSON-lines or text file left in blocks of whole
    lines (`blocks`): splitting them is work a replay's worker process can do instead."""
    for name in expand_paths(paths):
        if name == "-":
            yield from stream_parts(sys.stdin.buffer, "<stdin>", None, source, blocks=blocks)
            continue
        with open(name, "rb") as handle:
            yield from stream_parts(handle, name, progress, source, blocks=blocks)


# Pickled to worker processes; mypyc cannot unpickle a frozen native class, so this one
# stays a Python class.
@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class LineBlock:
    """Whole lines of one file, the first of them line `first_line` (counting from 1)."""

    data: bytes
    name: str
    first_line: int
    source: str | None = None

    def records(self) -> Iterator[RawRecord]:
        """One record per line that is not blank, named `<file>:<line>`."""
        return _lines(io.BytesIO(self.data), self.name, self.source, self.first_line)


# A compiled class cannot derive from io.RawIOBase; this one stays a Python class.
@mypyc_attr(native_class=False)
class _PromptReader(io.RawIOBase):
    """A handle as the raw stream under the reader's buffer: each read gives what one
    read of the handle gives (`readinto1`), so a pipe's records come through as they arrive
    instead of once a buffer of 1 MiB has filled. Reports the bytes consumed to
    `progress`: compressed bytes, so progress follows the file on disk."""

    def __init__(self, inner: BinaryIO, progress: ProgressCallback | None) -> None:
        # a buffered stream's `readinto1`; a raw one's `readinto` is already one read
        read_into = getattr(inner, "readinto1", None) or getattr(inner, "readinto")  # noqa: B009
        self._read_into: Callable[[memoryview], int] = read_into
        self._progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        size = self._read_into(buffer)
        if size and self._progress is not None:
            self._progress(size)
        return size


def read_stream(
    handle: BinaryIO,
    name: str,
    progress: ProgressCallback | None = None,
    source: str | None = None,
    chunk_size: int = _CHUNK,
) -> Iterator[RawRecord]:
    """Records of one byte stream, gzip or not, in the layout sniffed from its start."""
    parts = stream_parts(handle, name, progress, source, chunk_size, blocks=False)
    return cast(Iterator[RawRecord], parts)  # without blocks, every part is a record


def stream_parts(
    handle: BinaryIO,
    name: str,
    progress: ProgressCallback | None = None,
    source: str | None = None,
    chunk_size: int = _CHUNK,
    *,
    blocks: bool = True,
) -> Iterator[LineBlock | RawRecord]:
    """`read_stream`, with lines left in blocks of whole lines (about 1 MiB each) when
    `blocks`."""
    stream: Stream = io.BufferedReader(_PromptReader(handle, progress), _BUFFER)
    try:
        if stream.peek(2)[:2] == _GZIP_MAGIC:
            stream = io.BufferedReader(gzip.GzipFile(fileobj=stream), _BUFFER)
        first = _first_significant_byte(stream)
        if first == b"[" or (first == b"{" and not _first_line_is_json(stream)):
            yield from _json_values(stream, name, source, chunk_size)
        elif blocks:
            yield from _line_blocks(stream, name, source, _LINE_BLOCK)
        else:
            yield from _lines(stream, name, source)
    except (OSError, EOFError, zlib.error) as exc:
        # What was read before the break has been yielded; the break itself is reported.
        yield RawRecord(b"", name, source, error=f"unreadable input: {exc}")


def _first_significant_byte(stream: Stream) -> bytes:
    head = stream.peek(_BUFFER)
    stripped = head.lstrip(_WHITESPACE)
    return stripped[:1]


def _first_line_is_json(stream: Stream) -> bool:
    head = stream.peek(_BUFFER).lstrip(_WHITESPACE)
    line = head.split(b"\n", 1)[0]
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


#: `tuple.__new__` and `RawRecord` as Final names: compiled, C statics, where the names
#: would be looked up (in the module's dict, and `__new__` on the type) for every line
_NEW_TUPLE: Final = tuple.__new__
_RAW_RECORD: Final = RawRecord


def _raw_record(data: bytes, origin: str, source: str | None) -> RawRecord:
    """`RawRecord(data, origin, source)` without the `__new__` that `NamedTuple` writes in
    Python: the one call into the interpreter a replay made per line."""
    return _NEW_TUPLE(_RAW_RECORD, (data, origin, source, None))


def _lines(stream: BinaryIO, name: str, source: str | None, first: int = 1) -> Iterator[RawRecord]:
    for number, line in enumerate(stream, start=first):
        stripped = _without_line_end(line)
        # a record starts at its first byte: only the rare other line is copied to test it
        if (stripped and stripped[0] not in _WHITESPACE) or stripped.strip(_WHITESPACE):
            yield _raw_record(stripped, f"{name}:{number}", source)


def _without_line_end(line: bytes) -> bytes:
    """`line.rstrip(b"\\r\\n")` for a line as read (only its last byte can be a `\\n`):
    compiled, two index tests and a slice instead of a method call."""
    end = len(line)
    if end and line[end - 1] == _NEWLINE:
        end -= 1
    if end and line[end - 1] == _CARRIAGE_RETURN:
        return line[:end].rstrip(b"\r")
    return line[:end] if end < len(line) else line


def _line_blocks(stream: Stream, name: str, source: str | None, size: int) -> Iterator[LineBlock]:
    """The stream cut after the last line end of every `size` bytes read."""
    number = 1
    pieces: list[bytes] = []
    while chunk := stream.read(size):
        end = chunk.rfind(b"\n") + 1
        if end == 0:  # a line longer than `size`: keep reading
            pieces.append(chunk)
            continue
        data = b"".join([*pieces, chunk[:end]]) if pieces else chunk[:end]
        pieces = [chunk[end:]] if end < len(chunk) else []
        yield LineBlock(data, name, number, source)
        number += _line_count(data)
    if pieces:
        yield LineBlock(b"".join(pieces), name, number, source)


def _line_count(data: bytes) -> int:
    """How many lines `data`, whole lines, has. (Iterating finds each line end with
    `memchr`; `count` tests every byte: five times as long, in the process that feeds a
    replay's workers.)"""
    count = 0
    for _ in io.BytesIO(data):
        count += 1
    return count


_IN_STRING: Final = re.compile(rb'["\\]')


def _first_non_space(data: bytes, start: int, end: int) -> int | None:
    for index in range(start, end):
        if data[index] not in _WHITESPACE:
            return index
    return None


def _json_values(
    stream: Stream, name: str, source: str | None, chunk_size: int
) -> Iterator[RawRecord]:
    """Split a stream of JSON values, and the elements of top-level arrays, unparsed.

    A scanner tracks strings, escapes and nesting depth; a record ends where depth
    returns to the record's level. Bytes left at the end (a truncated value) are
    yielded as one record so that they are dead-lettered, not lost.
    """
    depth = 0
    in_array = False  # inside a top-level array, whose elements are the records
    in_string = False
    skip_next = False  # an escape's second byte fell into the next chunk
    start: int | None = None  # start of the current record within `buffer`
    offset = 0  # stream position of buffer[0]
    buffer = b""

    def record(end: int) -> RawRecord:
        assert start is not None
        return _raw_record(buffer[start:end].strip(_WHITESPACE), f"{name}@{offset + start}", source)

    while chunk := stream.read1(chunk_size):  # what has arrived: a pipe is not waited on
        position = len(buffer)
        buffer += chunk
        if skip_next:
            position += 1
            skip_next = False
        while position < len(buffer):
            level = 1 if in_array else 0
            if in_string:
                found = _IN_STRING.search(buffer, position)
                if found is None:
                    position = len(buffer)
                elif buffer[found.start()] == 0x5C:  # backslash: skip the escaped byte
                    position = found.start() + 2
                    skip_next = position > len(buffer)
                else:
                    in_string = False
                    position = found.start() + 1
                continue
            found = _STRUCTURAL.search(buffer, position)
            end = found.start() if found else len(buffer)
            if start is None and depth == level:
                start = _first_non_space(buffer, position, end)
            if found is None:
                position = len(buffer)
                continue
            char = buffer[end]
            if char == 0x22:  # quote
                if start is None and depth == level:
                    start = end
                in_string = True
            elif char in b"[{":
                if char == 0x5B and depth == 0 and start is None:
                    in_array = True
                elif start is None and depth == level:
                    start = end
                depth += 1
            elif char in b"]}" and depth == level and not (in_array and char == 0x5D):
                # a closer with nothing of it open: a stray byte, kept (dead-lettered) in
                # the record it cuts into, or as a record of its own
                if start is None:
                    start = end
                    yield record(end + 1)
                    start = None
            elif char in b"]}":
                depth = max(depth - 1, 0)
                if in_array and depth == 0:
                    if start is not None:
                        yield record(end)
                        start = None
                    in_array = False
                elif start is not None and depth == level:
                    yield record(end + 1)
                    start = None
            elif char == 0x2C and depth == level and start is not None:  # comma
                yield record(end)
                start = None
            position = end + 1
        keep = start if start is not None else len(buffer)
        offset += keep
        buffer = buffer[keep:]
        if start is not None:
            start = 0
    if start is not None and buffer.strip(_WHITESPACE):
        yield record(len(buffer))
