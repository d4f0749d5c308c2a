"""How long making an append durable takes on a file system: `fsync` against `fdatasync`.

The sinks' outboxes append a few lines and make them durable before a detection is
sent, so the tail of this call is the tail of alert latency. Two files in one directory
each get the same small appends, turn by turn (so both see the same moments of the
disk), one synced with `fsync` and one with `fdatasync`. Appends a dated section to
BENCHMARKS.md.

    python -m bench.disk_sync --dir /var/lib/detector --appends 2000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import command, filesystem_of, machine, percentile, record

#: one outbox line's size, about
LINE = b"x" * 600 + b"\n"
#: the pause between two rounds (s): appends come at a pace, not in a burst
PAUSE = 0.003


def measure(directory: Path, appends: int) -> dict[str, list[float]]:
    """Milliseconds of each sync, by call."""
    calls = {"fsync": os.fsync, "fdatasync": os.fdatasync}
    files = {
        name: os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND) for name in calls
    }
    took: dict[str, list[float]] = {name: [] for name in calls}
    try:
        for _ in range(appends):
            for name, sync in calls.items():
                os.write(files[name], LINE)
                start = time.perf_counter()
                sync(files[name])
                took[name].append((time.perf_counter() - start) * 1000)
            time.sleep(PAUSE)
    finally:
        for descriptor in files.values():
            os.close(descriptor)
    return took


def report(directory: Path, appends: int, took: dict[str, list[float]]) -> str:
    rows = [
        "| call | appends | p50 ms | p99 ms | p99.9 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, values in took.items():
        rows.append(
            f"| `{name}` | {appends:,} | {percentile(values, 0.5):.2f} "
            f"| {percentile(values, 0.99):.2f} | {percentile(values, 0.999):.2f} "
            f"| {max(values):.2f} |"
        )
    now = datetime.now(UTC)
    return "\n".join(
        [
            f"## Durable appends: fsync against fdatasync, {now:%Y-%m-%d %H:%M} UTC",
            "",
            machine(),
            f"- command: `{command('bench.disk_sync')}`",
            f"- file system: {filesystem_of(directory)}; appends of {len(LINE)} bytes to "
            f"two files, turn by turn, {PAUSE * 1000:g} ms between rounds; each append made "
            "durable before the next",
            "",
            *rows,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--dir", type=Path, default=None, help="where (default: the temporary directory)"
    )
    parser.add_argument("--appends", type=int, default=2000, help="appends to each file")
    parser.add_argument("--no-record", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sync-", dir=args.dir) as directory:
        took = measure(Path(directory), args.appends)
        text = report(Path(directory), args.appends, took)
    print(text)
    if not args.no_record:
        record(text)


if __name__ == "__main__":
    main()
