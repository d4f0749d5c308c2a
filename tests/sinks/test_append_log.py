"""`AppendLog` shared by writers in several processes (the Kafka workers' sinks append
to one JSON lines file): no line written is lost or torn, whoever opens the file."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from detector.sinks.durable import AppendLog

WRITERS = 3
LINES = 400
#: more than a page and than Python's write buffer: such a line took several writes
PAD = b"x" * 9000


def _write_lines(path: Path, writer: int) -> None:
    log = AppendLog(path)
    for index in range(LINES):
        log.append(b'{"writer":%d,"line":%d,"pad":"%s"}' % (writer, index, PAD))
    log.close()


def _open_until(path: Path, done: multiprocessing.synchronize.Event) -> None:
    while not done.is_set():
        AppendLog(path).close()


def test_writers_in_other_processes_lose_no_line_when_the_file_is_opened_meanwhile(
    tmp_path: Path,
) -> None:
    path = tmp_path / "alerts.jsonl"
    path.write_bytes(b"")
    context = multiprocessing.get_context("fork")  # the children need this module
    done = context.Event()
    opener = context.Process(target=_open_until, args=(path, done))
    writers = [context.Process(target=_write_lines, args=(path, n)) for n in range(WRITERS)]
    opener.start()
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
    done.set()
    opener.join(timeout=120)
    assert [w.exitcode for w in [*writers, opener]] == [0] * (WRITERS + 1)
    lines = path.read_bytes().splitlines()
    expected = {
        b'{"writer":%d,"line":%d,"pad":"%s"}' % (n, i, PAD)
        for n in range(WRITERS)
        for i in range(LINES)
    }
    assert len(lines) == len(expected)
    assert set(lines) == expected


@pytest.mark.parametrize("tail", [b"", b"\n", b'{"cut', b"x" * 70000])
def test_opening_drops_only_a_line_its_writer_did_not_finish(tmp_path: Path, tail: bytes) -> None:
    path = tmp_path / "log.jsonl"
    whole = b'{"a":1}\n{"b":2}\n'
    path.write_bytes(whole + tail)
    log = AppendLog(path)
    log.append(b'{"c":3}')
    log.close()
    kept = whole + (tail if tail.endswith(b"\n") else b"")
    assert path.read_bytes() == kept + b'{"c":3}\n'


def test_lines_written_are_flushed_on_close_and_not_before(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    log = AppendLog(path)
    log.write(b"one", b"two")
    assert path.read_bytes() == b""
    log.close()
    assert path.read_bytes() == b"one\ntwo\n"
