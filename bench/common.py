"""What every benchmark script shares: the machine line, the command line and the record."""

from __future__ import annotations

import os
import platform
import shlex
import sys
from pathlib import Path

import detector.pipeline

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "BENCHMARKS.md"
#: The shared reference checkout (SigmaHQ rules...): next to the project, or next to the
#: directory of git worktrees the project is checked out in.
SHARED = next(
    (path for path in (ROOT.parent / "shared", ROOT.parents[1] / "shared") if path.is_dir()),
    ROOT.parent / "shared",
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def hot_path() -> str:
    """How the engine's hot path runs: compiled by mypyc (setup.py) or as Python."""
    compiled = (detector.pipeline.__file__ or "").endswith(".so")
    return "compiled by mypyc" if compiled else "Python (not compiled)"


def interpreter() -> str:
    """The interpreter's own file, behind the virtual environment's link: how it was
    built (profile-guided and link-time optimized, or not) moves every result."""
    return str(Path(sys.executable).resolve())


def machine() -> str:
    """`- machine: ...` for a BENCHMARKS.md section."""
    return (
        f"- machine: {cpu_model()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()} at {interpreter()} "
        f"({platform.system()} {platform.release()}); hot path {hot_path()}"
    )


def command(module: str) -> str:
    """The command that ran this benchmark, as a reader would type it."""
    python = Path(sys.executable)
    shown = python.relative_to(Path.cwd()) if python.is_relative_to(Path.cwd()) else python
    return shlex.join([str(shown), "-m", module, *sys.argv[1:]])


def record(report: str) -> None:
    """Append the dated section to BENCHMARKS.md (created with its heading if absent)."""
    if not RESULTS.exists():
        RESULTS.write_text(
            "# Benchmarks\n\nMeasurements appended by the scripts in bench/, newest last.\n",
            encoding="utf-8",
        )
    with RESULTS.open("a", encoding="utf-8") as handle:
        handle.write(f"\n{report}\n")


def percentile(values: list[float], fraction: float) -> float:
    """The value at `fraction` of `values` sorted (the index rounded down)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def filesystem_of(path: Path) -> str:
    """`path`'s mount point and file system type (Linux /proc/mounts)."""
    resolved, best = path.resolve(), ("/", "unknown")
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, kind, *_ = line.split()
        if resolved.is_relative_to(mount) and len(mount) >= len(best[0]):
            best = (mount, kind)
    return f"{best[0]} ({best[1]})"
