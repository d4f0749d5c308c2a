"""Memory of `detector replay` as the input grows: generated audit logs of each size are
replayed by the command line in a subprocess (the shipped rule pack, correlations
included) while its resident memory is sampled; peak RSS and RSS at 10%, 50% and 90% of
the input show whether memory stays flat. The inputs go to a temporary directory that is
deleted afterwards. Prints a table and appends it to BENCHMARKS.md.

    python -m bench.replay_memory --sizes-mb 100 1000 --lateness unbounded 10m
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.common import ROOT, command, machine, record
from bench.generate import generate

#: events of the pilot file that measures the generator's bytes per event
PILOT_EVENTS = 5_000
SAMPLE_SECONDS = 0.2
_PROGRESS = re.compile(r"progress: (\d+)/(\d+) \(([\d.]+)%\)")


@dataclass
class Run:
    size_mb: float
    events: int
    lateness: str
    seconds: float = 0.0
    peak_mib: float = 0.0
    #: (percent of input read, RSS MiB) at each progress line
    at_progress: list[tuple[float, float]] = field(default_factory=list)
    summary: str = ""

    def rss_at(self, percent: float) -> float | None:
        return next((rss for done, rss in self.at_progress if done >= percent), None)


def rss_mib(pid: int) -> float:
    """VmRSS of `pid` (0 once it has exited)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def replay(data: Path, lateness: str, events: int, tmp: Path) -> Run:
    """`detector replay data` in a subprocess, sampling its RSS; progress lines on its
    stderr (not a terminal) say how far it is."""
    run = Run(data.stat().st_size / 1e6, events, lateness)
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "detector", "replay", str(data), "--allowed-lateness", lateness,
         "--dead-letter", str(tmp / "dead.jsonl"), "--progress-every", "1"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []

    def read_progress() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            match = _PROGRESS.search(line)
            if match:
                run.at_progress.append((float(match[3]), rss_mib(process.pid)))
            else:
                lines.append(line.rstrip())

    reader = threading.Thread(target=read_progress)
    reader.start()
    while process.poll() is None:
        run.peak_mib = max(run.peak_mib, rss_mib(process.pid))
        time.sleep(SAMPLE_SECONDS)
    reader.join()
    run.seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit("detector replay failed:\n" + "\n".join(lines[-20:]))
    run.summary = " ".join(" ".join(lines[:1]).split())
    return run


def bytes_per_event(tmp: Path) -> float:
    pilot = tmp / "pilot.jsonl"
    generate(pilot, PILOT_EVENTS, seed=1)
    size = pilot.stat().st_size / PILOT_EVENTS
    pilot.unlink()
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[100.0, 1000.0])
    parser.add_argument("--lateness", nargs="+", default=["unbounded", "10m"])
    parser.add_argument("--note", default="", help="a line about the conditions of the run")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="replay-memory-") as name:
        tmp = Path(name)
        per_event = bytes_per_event(tmp)
        for size in args.sizes_mb:
            events = int(size * 1e6 / per_event)
            data = tmp / f"audit-{size:g}mb.jsonl"
            generate(data, events, seed=1)
            for lateness in args.lateness:
                run = replay(data, lateness, events, tmp)
                runs.append(run)
                print(f"{run.size_mb:,.0f} MB, lateness {lateness}: {run.seconds:.0f}s, "
                      f"peak {run.peak_mib:.0f} MiB", file=sys.stderr)  # fmt: skip
            data.unlink()
    report = render(runs, args.note)
    print(report)
    record(report)


def render(runs: list[Run], note: str) -> str:
    def mib(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f}"

    rows = [
        f"| {run.size_mb:,.0f} | {run.events:,} | {run.lateness} | {run.seconds:,.0f} | "
        f"{run.events / run.seconds:,.0f} | {mib(run.rss_at(10))} | {mib(run.rss_at(50))} | "
        f"{mib(run.rss_at(90))} | {mib(run.peak_mib)} |"
        for run in runs
    ]
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## Replay memory, {when}",
        "",
        machine(),
        f"- command: `{command('bench.replay_memory')}`",
        "- input: `bench.generate` audit mix (seed 1), one JSON-lines file per size, replayed "
        "by `detector replay FILE --allowed-lateness L` in a subprocess with the shipped "
        "pack (single-event rules and correlations), detections to /dev/null",
        "- RSS sampled from /proc every 0.2 s (peak) and at each progress line (10/50/90% of "
        "the input bytes read); events/s includes start-up and rule loading",
    ]
    if note:
        lines.append(f"- {note}")
    lines += [
        "",
        "| input MB | events | lateness | seconds | events/s | RSS MiB at 10% | at 50% | "
        "at 90% | peak RSS MiB |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
