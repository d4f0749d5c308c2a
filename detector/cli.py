"""The `detector` command line."""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from detector import __version__, schemas
from detector.config import ConfigError, Settings, load_settings
from detector.deadletter import DeadLetter, DeadLetterFile
from detector.normalize import NormalizeStage, UnknownSourceError
from detector.normalize.builtin import build_registry
from detector.normalize.declared import DeclaredSource
from detector.sources.files import expand_paths, read_paths, total_size

stderr = Console(stderr=True)

SCHEMA_DIR = Path("schemas")


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc


@click.group()
@click.version_option(__version__, prog_name="detector")
def main() -> None:
    """Streaming detection engine for CI/CD audit logs."""


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--source", help="Read every record as this source instead of detecting it.")
@click.option("--product", help="Sigma product of a --source the engine does not know.")
@click.option("--service", default="audit", show_default=True, help="Sigma service of it.")
@click.option("--time-field", help="Dotted path of the event time of an unknown --source.")
@click.option("--id-field", help="Dotted path of the event id of an unknown --source.")
@click.option("--config", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--dead-letter",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("detector.deadletter.jsonl"),
    show_default=True,
    help="Where records that cannot be normalized go, with the reason.",
)
def normalize(
    paths: tuple[str, ...],
    source: str | None,
    product: str | None,
    service: str,
    time_field: str | None,
    id_field: str | None,
    config: Path | None,
    dead_letter: Path,
) -> None:
    """Normalize audit logs (files, directories, gzip, `-` for stdin) to JSON lines on stdout."""
    settings = _settings(config)
    registry = build_registry(settings.sources)
    if source and source not in registry.by_name:
        declared = DeclaredSource(
            name=source, product=product, service=service, time_field=time_field, id_field=id_field
        )
        registry = build_registry(settings.sources, [declared])
    try:
        stage = NormalizeStage(registry, source)
        files = expand_paths(paths)
    except (UnknownSourceError, FileNotFoundError) as exc:
        raise click.UsageError(str(exc.args[0])) from exc

    counts: Counter[str] = Counter()
    per_source: Counter[str] = Counter()
    out = sys.stdout.buffer
    started = time.monotonic()
    with DeadLetterFile(dead_letter) as letters, _progress() as progress:
        task = progress.add_task("normalize", total=total_size(files))
        records = read_paths(files, lambda n: progress.advance(task, n))
        for raw in stage.join_continuation_lines(records):
            for result in stage.process(raw):
                counts["read"] += 1
                if isinstance(result, DeadLetter):
                    letters.write(result)
                    counts["dead-lettered"] += 1
                else:
                    out.write(result.to_json() + b"\n")
                    counts["normalized"] += 1
                    per_source[result.event_source] += 1
    out.flush()
    elapsed = time.monotonic() - started
    rate = counts["read"] / elapsed if elapsed > 0 else 0.0
    stderr.print(
        f"read {counts['read']} · normalized {counts['normalized']} · "
        f"dead-lettered {counts['dead-lettered']}"
        + (f" (to {dead_letter})" if counts["dead-lettered"] else "")
        + f" · {elapsed:.2f}s · {rate:,.0f} records/s",
        highlight=False,
    )
    if per_source:
        stderr.print(
            "by source: " + ", ".join(f"{k} {v}" for k, v in sorted(per_source.items())),
            highlight=False,
        )


def _progress() -> Progress:
    """A byte-based progress bar on stderr; silent when stderr is not a terminal."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,
    )


@main.group()
def schema() -> None:
    """The exported JSON Schemas."""


@schema.command("export")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=SCHEMA_DIR,
    show_default=True,
)
def schema_export(directory: Path) -> None:
    """Write the JSON Schemas of the contracts (event) to DIR."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, document in schemas.documents().items():
        path = directory / name
        path.write_bytes(document)
        stderr.print(f"wrote {path}", highlight=False)
