"""Blocks of whole lines: what a replay's workers split themselves gives, block by block,
the records of the whole file, continuation lines joined, whatever the block size, and
the same records as the plain definition of a line."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.config import SourcesSettings
from detector.normalize import NormalizeStage
from detector.normalize.builtin import build_registry
from detector.parallel import file_tasks
from detector.pipeline import file_records
from detector.sources import files
from detector.sources.files import LineBlock, read_parts, read_paths
from detector.sources.records import RawRecord

STAGE = NormalizeStage(build_registry(SourcesSettings()))

#: Lines of the shapes a JSON-lines or Jenkins text file has: records, a script-console
#: record and its continuation lines, blanks, Windows line ends.
LINES = st.sampled_from(
    [
        b'{"kind":"Event","auditID":"a"}',
        b'{"zeta": 1}',
        b"Mar 4, 2025 6:26:00,000 AM A groovy script was executed by user 'mallory'. "
        b"Origin: Script Console Controller.",
        b"Mar 4, 2025 6:27:00,000 AM /configure by alice",
        b"println 'id'.execute().text",
        b"  }",
        b"",
        b"   ",
        b"\r",
        b"not json {",
    ]
)


@contextmanager
def _file_in_blocks(lines: list[bytes], end: bytes, block: int) -> Iterator[str]:
    """A file of `lines`, read in blocks of about `block` bytes while the context lasts."""
    with tempfile.TemporaryDirectory() as directory, pytest.MonkeyPatch.context() as patch:
        path = Path(directory) / "audit.log"
        path.write_bytes(b"\n".join(lines) + end)
        patch.setattr(files, "_LINE_BLOCK", block)
        yield str(path)


FILES = {
    "lines": st.lists(LINES, min_size=1, max_size=40),
    "end": st.sampled_from([b"", b"\n", b"\r\n"]),
    "block": st.integers(min_value=1, max_value=400),
}


def _task_records(name: str) -> list[RawRecord]:
    """The records each of `file_tasks`' tasks gives a worker, in task order."""
    records: list[RawRecord] = []
    for _, (argument,) in file_tasks(name, STAGE, None):
        if isinstance(argument, LineBlock):
            records.extend(STAGE.join_continuation_lines(argument.records()))
        else:
            records.extend(argument)  # type: ignore[call-overload]
    return records


@settings(max_examples=200, deadline=None)
@given(**FILES)
def test_tasks_give_the_records_of_the_whole_file(
    lines: list[bytes], end: bytes, block: int
) -> None:
    with _file_in_blocks(lines, end, block) as name:
        assert _task_records(name) == list(file_records(name, STAGE))


@settings(max_examples=200, deadline=None)
@given(**FILES)
def test_blocks_hold_the_lines_of_the_file_with_their_numbers(
    lines: list[bytes], end: bytes, block: int
) -> None:
    with _file_in_blocks(lines, end, block) as name:
        parts = list(read_parts([name]))
        from_blocks = [r for part in parts if isinstance(part, LineBlock) for r in part.records()]
        assert from_blocks == list(read_paths([name]))


@settings(max_examples=200, deadline=None)
@given(**FILES)
def test_the_records_are_the_lines_that_are_not_blank(
    lines: list[bytes], end: bytes, block: int
) -> None:
    """Against the plain definition: each line read on its own, line end stripped."""
    with _file_in_blocks(lines, end, block) as name:
        expected = [
            (line.rstrip(b"\r\n"), f"{name}:{number}")
            for number, line in enumerate(io.BytesIO(Path(name).read_bytes()), start=1)
            if line.strip(b" \t\r\n")
        ]
        assert [(r.data, r.origin) for r in read_paths([name])] == expected


def test_a_json_array_file_is_sent_as_records(tmp_path: Path) -> None:
    path = tmp_path / "batch.json"
    path.write_bytes(b'[{"a": 1},\n {"b": 2}]')
    [(_, (records,))] = list(file_tasks(str(path), STAGE, None))
    assert [r.data for r in records] == [b'{"a": 1}', b'{"b": 2}']  # type: ignore[attr-defined]
