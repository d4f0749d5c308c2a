"""The file readers: layouts, gzip, directories, truncation, and chunk boundaries."""

from __future__ import annotations

import gzip
import io
import os
import threading
from pathlib import Path

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from detector.sources.files import expand_paths, read_paths, read_stream
from tests.strategies import JSON_VALUES as json_values


def records(data: bytes, chunk_size: int = 1 << 20) -> list[bytes]:
    return [r.data for r in read_stream(io.BytesIO(data), "t", chunk_size=chunk_size)]


def test_json_lines_keep_each_line_and_its_number() -> None:
    got = list(read_stream(io.BytesIO(b'{"a":1}\n\n{"b":2}\r\n'), "f.jsonl"))
    assert [(r.data, r.origin) for r in got] == [
        (b'{"a":1}', "f.jsonl:1"),
        (b'{"b":2}', "f.jsonl:3"),
    ]


@given(st.lists(st.sampled_from([b"x", b"{}", b" ", b"\r", b"\n", b"\r\n", b"\t"]), max_size=12))
def test_a_line_is_its_bytes_without_its_line_end(pieces: list[bytes]) -> None:
    """Each record of a text stream is its line without the trailing `\\r`s and `\\n`."""
    data = b"".join(pieces)
    expected = [
        stripped
        for line in io.BytesIO(data)
        if (stripped := line.rstrip(b"\r\n")).strip(b" \t\r\n")
    ]
    if data.lstrip(b" \t\r\n")[:1] in (b"{", b"["):
        return  # JSON values: read by the value scanner, not by line
    assert [r.data for r in read_stream(io.BytesIO(data), "t")] == expected


def test_text_lines_are_records_too() -> None:
    line = b"Mar 4, 2025 6:22:18,819 AM /job/x/configSubmit by a from 10.0.0.1"
    assert records(line + b"\n" + line) == [line, line]


def test_truncated_last_line_is_a_record_of_its_own() -> None:
    assert records(b'{"a":1}\n{"b":') == [b'{"a":1}', b'{"b":']


def test_array_elements_are_records() -> None:
    data = b'[ {"a": "]},"}, [1], "x", 2 ]'
    assert records(data) == [b'{"a": "]},"}', b"[1]", b'"x"', b"2"]


def test_pretty_printed_objects_are_records() -> None:
    first = {"kind": "EventList", "items": [{"a": "}"}]}
    second = {"b": {"c": [1, 2]}}
    data = orjson.dumps(first, option=orjson.OPT_INDENT_2) + b"\n" + orjson.dumps(second)
    assert [orjson.loads(r) for r in records(data)] == [first, second]


def test_truncated_pretty_printed_value_is_kept_for_the_dead_letter() -> None:
    assert records(b'{\n "a": 1\n}\n{\n "b": "unterminated') == [
        b'{\n "a": 1\n}',
        b'{\n "b": "unterminated',
    ]


def test_gzip_is_recognised_by_content_not_name(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_bytes(gzip.compress(b'{"a":1}\n{"b":2}\n'))
    assert [r.data for r in read_paths([str(path)])] == [b'{"a":1}', b'{"b":2}']


def test_directories_are_walked_in_order_skipping_hidden(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.jsonl").write_bytes(b'{"n":2}\n')
    (tmp_path / "a.jsonl").write_bytes(b'{"n":1}\n')
    (tmp_path / ".hidden").write_bytes(b'{"n":0}\n')
    assert [r.data for r in read_paths([str(tmp_path)])] == [b'{"n":1}', b'{"n":2}']


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file or directory"):
        expand_paths([str(tmp_path / "absent")])


def test_progress_counts_bytes_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"a":1}\n' * 1000))
    seen: list[int] = []
    assert len(list(read_paths([str(path)], seen.append))) == 1000
    assert sum(seen) == path.stat().st_size


@settings(max_examples=200, deadline=None)
@given(
    objects=st.lists(st.dictionaries(st.text(), json_values, max_size=4), min_size=1, max_size=5),
    chunk=st.integers(min_value=1, max_value=64),
    indent=st.booleans(),
)
def test_splitting_is_independent_of_chunk_boundaries(
    objects: list[dict[str, object]], chunk: int, indent: bool
) -> None:
    option = orjson.OPT_INDENT_2 if indent else 0
    array = orjson.dumps(objects, option=option)
    assert [orjson.loads(r) for r in records(array, chunk)] == objects
    if indent and objects[0]:  # a file's layout is sniffed from its first record
        stream = b"\n".join(orjson.dumps(o, option=option) for o in objects)
        assert [orjson.loads(r) for r in records(stream, chunk)] == objects


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300))
@example(data=b"[}")  # a stray closer in an array
@example(data=b"[\\")  # a backslash outside a string
@example(data=b'{"a": 1}}{"b": 2}')
def test_arbitrary_bytes_never_crash_and_lose_nothing(data: bytes) -> None:
    got = list(read_stream(io.BytesIO(data), "t"))
    if data.startswith(b"\x1f\x8b"):
        return  # not a valid gzip stream: covered by the truncated-gzip test
    assert all(r.error is None for r in got)
    # Every byte outside JSON punctuation and blanks is in some record.
    kept = b"".join(r.data for r in got)
    assert set(data) - set(b" \t\r\n,[]") <= set(kept)


def test_truncated_gzip_yields_what_was_read_then_reports_the_break(tmp_path: Path) -> None:
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(b'{"a":1}\n' * 10000)[:-20])
    got = list(read_paths([str(path)]))
    assert all(r.error is None and r.data == b'{"a":1}' for r in got[:-1])
    assert got[-1].error is not None and "unreadable input" in got[-1].error


@pytest.mark.parametrize(
    "written",
    [b'{"a":1}\n{"b":2}\n', b'{\n  "a": 1\n}\n{\n  "b": 2\n}\n'],
    ids=["json-lines", "pretty-printed"],
)
def test_a_pipe_s_records_come_through_as_they_arrive(written: bytes) -> None:
    """`replay -` fed by a live stream: the records written so far are read while the
    pipe stays open, not once 1 MiB has come or the writer has closed it."""
    reading, writing = os.pipe()
    got: list[bytes] = []
    both = threading.Event()

    def read() -> None:
        with os.fdopen(reading, "rb") as stream:
            for record in read_stream(stream, "<stdin>"):
                got.append(record.data)
                if len(got) == 2:
                    both.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    with os.fdopen(writing, "wb") as stream:
        stream.write(written)
        stream.flush()
        arrived = both.wait(timeout=10)
    reader.join(timeout=10)
    assert arrived, "the records waited for the pipe to fill or close"
    assert [orjson.loads(data) for data in got] == [{"a": 1}, {"b": 2}]
