"""Loading the whole SigmaHQ rule set: without the rule cache, filling it, and from it.

Each load runs in a fresh interpreter (`load_rules` over rules/, rules-emerging-threats/
and rules-threat-hunting/ of the shared checkout), so none profits from the one before
but through the cache directory, a temporary one. Timed: `load_rules`, then "ready", the
rules ready to match: `load_rules` and building the `RuleRouter` over the built-in
sources' routes, which parses and compiles the routed rules a cached load left for later;
then, apart, generating the routed rules' matching functions (done on a rule's first
match). Imports are timed apart too. Prints a table and appends it to BENCHMARKS.md.

    python -m bench.rule_load
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import SHARED, command, machine, record

SIGMAHQ = SHARED / "sigmahq"
RULE_SETS = ("rules", "rules-emerging-threats", "rules-threat-hunting")


def load_once(cache: str | None) -> dict[str, float | int]:
    """One load in this process: seconds and CPU seconds of each step, rules and errors."""
    cpu = time.process_time()
    from detector.config import SourcesSettings
    from detector.normalize.builtin import build_registry
    from detector.rules import load_rules
    from detector.rules.cache import RuleCache
    from detector.rules.routing import RuleRouter

    imports = time.process_time() - cpu
    paths = [SIGMAHQ / name for name in RULE_SETS if (SIGMAHQ / name).is_dir()]
    chosen = RuleCache(Path(cache)) if cache else None
    routes = build_registry(SourcesSettings()).routes()
    wall, cpu = time.perf_counter(), time.process_time()
    loaded = load_rules(paths, cache=chosen)
    loaded_wall, loaded_cpu = time.perf_counter() - wall, time.process_time() - cpu
    router = RuleRouter(loaded.rules, routes)
    ready_wall, ready_cpu = time.perf_counter() - wall, time.process_time() - cpu
    unrouted = {id(rule) for rule in router.unrouted}
    routed = [rule for rule in loaded.rules if id(rule) not in unrouted]
    cpu = time.process_time()
    for rule in routed:
        rule.matches({})  # the first call generates the rule's function
    return {
        "imports": imports,
        "seconds": loaded_wall,
        "cpu": loaded_cpu,
        "ready_seconds": ready_wall,
        "ready_cpu": ready_cpu,
        "generate_cpu": time.process_time() - cpu,
        "rules": len(loaded.rules),
        "routed": len(routed),
        "errors": len(loaded.errors),
    }


def in_fresh_process(cache: str | None) -> dict[str, float | int]:
    arguments = [sys.executable, "-m", "bench.rule_load", "--one"]
    if cache:
        arguments += ["--cache", cache]
    output = subprocess.run(arguments, check=True, capture_output=True, text=True).stdout
    result: dict[str, float | int] = json.loads(output)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3, help="loads of each kind; best kept")
    parser.add_argument("--no-record", action="store_true", help="do not append to BENCHMARKS.md")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(load_once(args.cache)))
        return
    if not (SIGMAHQ / "rules").is_dir():
        print(f"{SIGMAHQ} is absent: nothing to load", file=sys.stderr)
        return

    rows = []
    with tempfile.TemporaryDirectory() as cache:
        runs = {
            "no cache": [in_fresh_process(None) for _ in range(args.repeat)],
            "filling the cache": [in_fresh_process(cache)],
            "from the cache": [in_fresh_process(cache) for _ in range(args.repeat)],
        }
    for name, results in runs.items():
        best = min(results, key=lambda r: r["ready_cpu"])
        rows.append(
            f"| {name} | {best['rules']:,} | {best['errors']:,} | {best['routed']:,} "
            f"| {best['seconds']:.2f} | {best['cpu']:.2f} "
            f"| **{best['ready_seconds']:.2f}** | **{best['ready_cpu']:.2f}** "
            f"| {best['generate_cpu']:.2f} | {best['imports']:.2f} | {len(results)} |"
        )
    now = datetime.now(UTC)
    report = "\n".join(
        [
            f"## SigmaHQ rule set load, {now:%Y-%m-%d %H:%M} UTC",
            "",
            machine(),
            f"- command: `{command('bench.rule_load')}`",
            f"- rules: {', '.join(RULE_SETS)} of the SigmaHQ checkout, every file; each load "
            "in a fresh interpreter; best of the loads by ready CPU time",
            "- ready: `load_rules` and building the `RuleRouter` over the built-in sources' "
            "routes (which parses and compiles the rules routed to a source); matching code: "
            "generating the routed rules' functions, which their first match does; imports: "
            "importing the rule engine, the settings and the normalizers",
            "",
            "| load | rules | rejected | routed | load_rules s | load_rules CPU s "
            "| ready s | ready CPU s | matching code CPU s | imports CPU s | loads |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )
    print(report)
    if not args.no_record:
        record(report)


if __name__ == "__main__":
    main()
