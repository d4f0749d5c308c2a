"""Following growing log files, like `tail -F`, for the live service.

A `Follower` polls one path: new complete lines become records on the service's queue
(a last line without its newline waits for it). It survives rotation by rename (the
path names another inode: the old file is read to its end, then the new one from its
start), copytruncate (the file shrank: read again from 0), and a file that does not
exist yet. Gzip is never followed: rotated `.gz` files are history, `detector replay`
reads them.

Each follower's position (device, inode, byte offset, line number) is kept in one
small JSON file, replaced atomically (`Positions`). A position moves past a line only
once the queue has accepted its record, so a restart continues where the last run
stopped: no line twice, none skipped. A file renamed away while the service was down
is found again by its inode in the same directory and finished first. Limits: a
copytruncate followed by writes past the old size before the next poll is not seen as
a truncation (as with `tail -F`); memory is bounded by the longest line.

Text sources whose entries span lines (a Jenkins script-console body) are joined with
`NormalizeStage.join_continuation_lines`: a text record is held back until the next
line shows it is complete, or `continuation_timeout_seconds` pass without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import BinaryIO, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from detector.intake.queue import RecordQueue, footprint
from detector.sinks.durable import write_atomically
from detector.sources.records import RawRecord

log = logging.getLogger("detector.follow")

FORMAT = "detector.follow/1"
_CHUNK = 1 << 20

#: `NormalizeStage.join_continuation_lines`, or any function of that shape
Joiner = Callable[[Iterable[RawRecord]], Iterator[RawRecord]]


class FollowedFile(BaseModel):
    """One log file the service follows."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(description="The file as the writer names it (not a rotated copy).")
    source: str | None = Field(
        default=None, description="The source of its records; detected per record when unset."
    )
    start_at: Literal["end", "beginning"] = Field(
        default="end",
        description="Where to start when there is no saved position: history is for replay.",
    )
    poll_interval_seconds: float = Field(default=0.5, gt=0)
    continuation_timeout_seconds: float = Field(
        default=1.0, gt=0, description="How long a text record waits for continuation lines."
    )


@dataclass(frozen=True, slots=True)
class Position:
    """Where a follower is: the next unread line of the file (device, inode)."""

    device: int
    inode: int
    offset: int = 0
    line: int = 0  # lines before `offset`

    def same_file(self, stat: os.stat_result) -> bool:
        return (self.device, self.inode) == (stat.st_dev, stat.st_ino)


class Positions:
    """Every follower's position in one JSON file; `None` keeps them in memory only."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._files: dict[str, Position] = {}
        if path is not None and path.exists():
            try:
                document = orjson.loads(path.read_bytes())
                if document.get("format") != FORMAT:
                    raise ValueError(f"not {FORMAT}")
                files = document["files"].items()
                self._files = {name: Position(**saved) for name, saved in files}
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise ValueError(f"{path}: not a follow state file: {exc}") from exc

    def get(self, name: str) -> Position | None:
        return self._files.get(name)

    def put(self, name: str, position: Position) -> None:
        if self._files.get(name) == position:
            return
        self._files[name] = position
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            files = {key: asdict(value) for key, value in self._files.items()}
            write_atomically(self.path, [orjson.dumps({"format": FORMAT, "files": files})])


class _Stopped(Exception):
    """The follower was stopped while the queue was full."""


class Follower:
    """Follows one file and offers its lines to `queue`, waiting while the queue is full."""

    def __init__(
        self,
        settings: FollowedFile,
        queue: RecordQueue,
        positions: Positions,
        join: Joiner | None = None,
    ) -> None:
        self.settings = settings
        self.name = str(settings.path)
        self.queue = queue
        self.positions = positions
        self.join = join
        self._stopping = asyncio.Event()
        self._first_open = True
        self._handle: BinaryIO | None = None
        self._position: Position | None = None  # the line after the last one taken
        self._partial = b""  # bytes read after `_position.offset`, not yet ended by a newline
        self._held: RawRecord | None = None  # a text record that may still continue
        self._held_at: Position | None = None  # where `_held` starts
        self._held_since = 0.0  # when `_held` last grew
        self._bytes_read = 0

    async def run(self) -> None:
        """Follow until `stop`; then offer a held record and save the position."""
        try:
            while not self._stopping.is_set():
                try:
                    await self.poll()
                except OSError as exc:  # unreadable for now: again from the saved position
                    log.warning("%s cannot be read: %s", self.name, exc)
                    self._save()
                    self._held = self._held_at = None
                    self._close()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._stopping.wait(), self.settings.poll_interval_seconds
                    )
            await self._release_held()
        except _Stopped:
            pass
        finally:
            self._save()
            self._close()

    def stop(self) -> None:
        self._stopping.set()

    async def poll(self) -> None:
        """Read what was appended, then look for rotation or truncation. A held text entry
        goes out when a poll finds nothing new and it has not grown for the timeout."""
        if self._handle is None and not await self._open():
            return
        read_before = self._bytes_read
        if not await self._read_to_end():
            return
        try:
            stat = os.stat(self.settings.path)
        except FileNotFoundError:  # renamed away, no new file yet: the old one may still grow
            return
        assert self._position is not None
        if not self._position.same_file(stat):
            # what the writer added before it rotated, then the new file from its start
            if not await self._read_to_end():
                return
            await self._end_of_file()
            self._close()
            log.info("%s was rotated: following the new file", self.name)
            if await self._open():
                await self._read_to_end()
        elif stat.st_size < self._position.offset + len(self._partial):
            log.info("%s was truncated: reading it again from the start", self.name)
            await self._release_held()
            assert self._handle is not None
            self._handle.seek(0)
            self._position = Position(stat.st_dev, stat.st_ino)
            self._partial = b""
            self._save()
        elif (
            self._held is not None
            and self._bytes_read == read_before
            and time.monotonic() - self._held_since >= self.settings.continuation_timeout_seconds
        ):
            await self._release_held()

    # -- opening ---------------------------------------------------------------------

    async def _open(self) -> bool:
        """Open the file at its saved position, or where `start_at` says (only for a file
        there at the first look: one created later is read whole); False if absent."""
        saved = self.positions.get(self.name)
        first = self._first_open
        if first and saved is not None and not await self._finish_rotated(saved):
            return False
        try:
            handle = open(self.settings.path, "rb")  # noqa: SIM115 - kept open while followed
        except FileNotFoundError:
            self._first_open = False
            return False
        self._first_open = False
        stat = os.fstat(handle.fileno())
        if saved is not None and saved.same_file(stat) and saved.offset <= stat.st_size:
            position = saved
        elif first and saved is None and self.settings.start_at == "end":
            position = await asyncio.to_thread(_end_position, handle, stat)
        else:
            position = Position(stat.st_dev, stat.st_ino)
        handle.seek(position.offset)
        self._handle, self._position, self._partial = handle, position, b""
        self._save()
        return True

    async def _finish_rotated(self, saved: Position) -> bool:
        """Read the rest of the file the saved position names if it was renamed away
        while the service was down (same directory, found by its inode). False if a stop
        came first."""
        try:
            if saved.same_file(os.stat(self.settings.path)):
                return True
        except FileNotFoundError:
            pass
        rotated = _find_inode(self.settings.path.parent, saved)
        if rotated is None:
            return True
        log.info("%s: finishing %s, rotated while stopped", self.name, rotated)
        self._handle, self._position, self._partial = rotated.open("rb"), saved, b""
        self._handle.seek(saved.offset)
        try:
            if not await self._read_to_end():
                return False
            await self._end_of_file()
        finally:
            self._close()
        return True

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self._handle = None

    # -- reading ---------------------------------------------------------------------

    async def _read_to_end(self) -> bool:
        """Take every complete line up to the end of the file; False if a stop came first."""
        assert self._handle is not None
        while chunk := self._handle.read(_CHUNK):
            self._bytes_read += len(chunk)
            *lines, self._partial = (self._partial + chunk).split(b"\n")
            for line in lines:
                await self._line(line, len(line) + 1)
            self._save()
            if self._stopping.is_set():
                return False
            await asyncio.sleep(0)
        return True

    async def _end_of_file(self) -> None:
        """The file is finished (rotated away): its last line needs no newline."""
        if self._partial:
            line, self._partial = self._partial, b""
            await self._line(line, len(line))
        await self._release_held()

    async def _line(self, line: bytes, size: int) -> None:
        """Offer the record of one line, after its continuation check."""
        before = self._position
        assert before is not None
        after = replace(before, offset=before.offset + size, line=before.line + 1)
        data = line.rstrip(b"\r")
        if data.strip(b" \t"):
            record = RawRecord(data, f"{self.name}:{after.line}", self.settings.source)
            if self.join is None:
                await self._offer(record)
            else:
                await self._join(self.join, record, before)
        self._position = after

    async def _join(self, join: Joiner, record: RawRecord, before: Position) -> None:
        """Offer what `record` shows complete; hold back a text record that may continue."""
        joined = list(join([self._held, record] if self._held else [record]))
        last = joined[-1]
        if last.error is None and last.data[:1] not in (b"{", b"["):
            complete, held = joined[:-1], last
        else:
            complete, held = joined, None
        for item in complete:
            await self._offer(item)
            if item is self._held:
                self._held = self._held_at = None
        if held is record:
            self._held, self._held_at = held, before
        elif held is not None:  # `record` continued the held one
            self._held = held
        self._held_since = time.monotonic()

    async def _release_held(self) -> None:
        if self._held is not None:
            await self._offer(self._held)
            self._held = self._held_at = None
            self._save()

    def _save(self) -> None:
        """The saved position never passes a record the queue has not accepted."""
        position = self._held_at if self._held is not None else self._position
        if position is not None:
            self.positions.put(self.name, position)

    async def _offer(self, record: RawRecord) -> None:
        """Wait until the queue takes `record`: never dropped. `_Stopped` if stopped first."""
        record = _fitting(record, self.queue.capacity)
        while not self.queue.offer([record]):
            try:
                await asyncio.wait_for(self._stopping.wait(), self.settings.poll_interval_seconds)
            except TimeoutError:
                continue
            raise _Stopped


def _fitting(record: RawRecord, capacity: int) -> RawRecord:
    """A line larger than the whole queue could never be taken: it is reported instead."""
    if footprint(record) <= capacity:
        return record
    reason = f"line of {len(record.data)} bytes exceeds the queue capacity"
    return RawRecord(b"", record.origin, record.source, error=reason)


def _end_position(handle: BinaryIO, stat: os.stat_result) -> Position:
    """After the last complete line, counting lines so that origins stay true."""
    lines = end = offset = 0
    while chunk := handle.read(_CHUNK):
        count = chunk.count(b"\n")
        if count:
            lines += count
            end = offset + chunk.rindex(b"\n") + 1
        offset += len(chunk)
    return Position(stat.st_dev, stat.st_ino, end, lines)


def _find_inode(directory: Path, position: Position) -> Path | None:
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return None
    for entry in entries:
        try:
            if entry.is_file() and position.same_file(entry.stat()):
                return Path(entry.path)
        except OSError:
            continue
    return None
