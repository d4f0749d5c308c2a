"""The `detector` command line."""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from zoneinfo import ZoneInfo

import click
import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from detector import __version__, schemas
from detector.config import DEFAULT_RULES, ConfigError, Settings, load_settings
from detector.correlate import (
    DEFAULT_MAX_GROUPS,
    CheckpointError,
    CorrelationEngine,
    CorrelationSet,
    EngineSettings,
    checkpoint,
    compile_correlations,
    parse_timespan,
)
from detector.deadletter import DeadLetter, DeadLetterFile
from detector.detections import Detection
from detector.events import Event
from detector.identity import IdentitySettings
from detector.intake.settings import IntakeConfigError
from detector.normalize import NormalizeStage, UnknownSourceError
from detector.normalize.base import SourceRoute
from detector.normalize.builtin import build_registry
from detector.normalize.declared import DeclaredSource
from detector.parallel import Workers, WorkerState, parallel_replay
from detector.pipeline import (
    Checkpointer,
    DetectionStage,
    EventSelection,
    Pacer,
    ProgressLine,
    RunCounts,
    normalized_events,
    replay_detections,
)
from detector.report import Report, ReportCollector, provenance, render, rule_summaries
from detector.report.collect import days
from detector.report.terminal import backtest_table
from detector.respond.cli import actions, playbooks
from detector.respond.replay import ReplayResponder
from detector.rules import CompiledRule, LoadResult, load_rules
from detector.rules.catalog import render_catalog
from detector.rules.routing import RuleRouter
from detector.rules.ruletests import run_tests, test_files
from detector.runtime.errors import PipelineFailedError, RulesNotLoadedError, WorkerStartError
from detector.search.connection import search_errors
from detector.search.export import TARGETS as EXPORT_TARGETS
from detector.search.export import export as export_rules
from detector.search.indexer import index_events
from detector.search.reader import IndexReader, SearchReadError
from detector.search.templates import EVENTS_STREAM
from detector.secrets import SecretError
from detector.sinks.durable import AppendLog
from detector.sinks.outbox import OutboxError
from detector.sources.files import expand_paths, total_size
from detector.sources.records import RawRecord
from detector.timestamps import TimestampError, from_iso

if TYPE_CHECKING:
    from detector.sinks.background import BackgroundSink

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


def source_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options that say how input is read, shared by `normalize` and `replay`."""
    options = [
        click.argument("paths", nargs=-1, required=True),
        click.option("--source", help="Read every record as this source instead of detecting it."),
        click.option("--product", help="Sigma product of a --source the engine does not know."),
        click.option("--service", default="audit", show_default=True, help="Sigma service of it."),
        click.option("--time-field", help="Dotted path of the event time of an unknown --source."),
        click.option("--id-field", help="Dotted path of the event id of an unknown --source."),
        click.option("--config", type=click.Path(path_type=Path, dir_okay=False, exists=True)),
        click.option(
            "--identities",
            type=click.Path(path_type=Path, dir_okay=False, exists=True),
            help="Identity map (YAML): one user.identity per person across sources.",
        ),
        click.option(
            "--dead-letter",
            type=click.Path(path_type=Path, dir_okay=False),
            default=Path("detector.deadletter.jsonl"),
            show_default=True,
            help="Where records that cannot be normalized go, with the reason.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


report_option = click.option(
    "--report",
    "report_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write a self-contained HTML report here: timelines, evidence, correlation chains, "
    "counts, dead-letter reasons, the command and the rule versions.",
)


@dataclass
class InputSpec:
    """The input of a batch command, validated."""

    files: list[str]
    stage: NormalizeStage
    dead_letter: Path
    settings: Settings  # loaded once from --config, for the sinks, responders and clusters


def input_spec(
    paths: tuple[str, ...],
    source: str | None,
    product: str | None,
    service: str,
    time_field: str | None,
    id_field: str | None,
    config: Path | None,
    identities: Path | None,
    dead_letter: Path,
) -> InputSpec:
    settings = _settings(config)
    declared = []
    if source and source not in build_registry(settings.sources).by_name:
        declared.append(
            DeclaredSource(
                name=source,
                product=product,
                service=service,
                time_field=time_field,
                id_field=id_field,
            )
        )
    registry = build_registry(settings.sources, declared)
    chosen = IdentitySettings(map_file=identities) if identities else settings.identities
    try:
        identity_map = chosen.load(registry.names)
        stage = NormalizeStage(registry, source, identities=identity_map)
        return InputSpec(expand_paths(paths), stage, dead_letter, settings)
    except (UnknownSourceError, FileNotFoundError, ValueError) as exc:
        raise click.UsageError(str(exc.args[0])) from exc


@main.command()
@source_options
@click.option(
    "--index",
    "index_target",
    help="es://STREAM or os://STREAM: index the events into that data stream of the "
    "`search:` cluster of --config instead of writing them to stdout.",
)
def normalize(index_target: str | None, **options: Any) -> None:
    """Normalize audit logs (files, directories, gzip, `-` for stdin) to JSON lines on stdout."""
    target = _index_input((index_target,))[1] if index_target else None
    if index_target and target is None:
        raise click.UsageError(f"--index {index_target}: use es://STREAM or os://STREAM")
    spec = input_spec(**options)
    counts = RunCounts()
    out = sys.stdout.buffer
    indexed = None
    with DeadLetterFile(spec.dead_letter) as letters, _progress(counts) as progress:
        task = progress.add_task("normalize", total=total_size(spec.files))
        advance = partial(progress.advance, task)
        events = normalized_events(spec.files, spec.stage, letters, counts, advance)
        if target is not None:
            kind, stream = target
            connection = spec.settings.search.model_copy(update={"kind": kind})
            try:
                indexed = index_events(connection, stream, events, letters)
            except search_errors() as exc:
                raise click.ClickException(f"{index_target}: {exc}") from exc
        else:
            for event in events:
                out.write(event.to_json() + b"\n")
    out.flush()
    _print_summary(counts, spec.dead_letter)
    if indexed is not None:
        stderr.print(
            f"index {index_target}: {indexed.indexed} indexed (new or already there) · "
            f"{indexed.refused} refused (dead-lettered)",
            highlight=False,
            soft_wrap=True,
        )


rules_option = click.option(
    "--rules",
    "rule_dirs",
    multiple=True,
    type=click.Path(path_type=Path, exists=True),
    help="Sigma rules (files or directories); repeatable. Default: the shipped rules/.",
)


@main.command()
@source_options
@rules_option
@click.option("--no-index", is_flag=True, help="Check every routed rule (for comparison).")
@click.option(
    "--allowed-lateness",
    default="unbounded",
    show_default=True,
    help="How far behind the newest event time an event may arrive and still be correlated "
    "(0, 30s, 10m, 1h); later ones are dead-lettered as late. unbounded: the whole input is "
    "put in event-time order first.",
)
@click.option(
    "--max-groups",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_GROUPS,
    show_default=True,
    help="Live groups per correlation before the least recently active is evicted.",
)
@click.option(
    "--checkpoint",
    "checkpoint_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Save the correlation state and input position here, at the end and periodically.",
)
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=10_000, show_default=True)
@click.option(
    "--from-checkpoint",
    is_flag=True,
    help="Resume from --checkpoint: skip the records it has already read.",
)
@click.option(
    "--since",
    callback=lambda _ctx, _param, value: _event_time(value),
    help="Use only events at or after this event time (ISO 8601 with a zone).",
)
@click.option(
    "--until",
    callback=lambda _ctx, _param, value: _event_time(value),
    help="Use only events before this event time (ISO 8601 with a zone).",
)
@click.option(
    "--only-source",
    "only_sources",
    multiple=True,
    help="Use only events of this source (event.source); repeatable.",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Append detections (JSON lines) to this file instead of writing them to stdout.",
)
@click.option(
    "--progress-every",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="When stderr is not a terminal, print a progress line every SECONDS (0: never).",
)
@click.option(
    "--speed",
    default="max",
    show_default=True,
    callback=lambda _ctx, _param, value: _speed(value),
    help="max: as fast as possible; N: N times real time by event time (1: as it happened).",
)
@click.option(
    "--sink",
    "sink_name",
    help="Also send detections to this output of the `sinks:` section of --config; waits "
    "for it to deliver (or its deadline) at the end.",
)
@report_option
@click.option(
    "--playbooks",
    "playbook_paths",
    multiple=True,
    type=click.Path(path_type=Path, exists=True),
    help="Plan the actions of these playbooks (repeatable); nothing is ever executed.",
)
@click.option(
    "--actions-output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("detector.actions.replay.jsonl"),
    show_default=True,
    help="Where --playbooks writes the action records (JSON lines).",
)
@click.option(
    "--query",
    help="es://, os:// inputs: only the documents this Lucene query string matches.",
)
@click.option(
    "--page-size",
    type=click.IntRange(min=1, max=10_000),
    default=1000,
    show_default=True,
    help="es://, os:// inputs: documents per search request.",
)
@click.option(
    "--resume-after",
    callback=lambda _ctx, _param, value: _sort_key(value),
    help="es://, os:// inputs: start after this sort key (JSON), as printed at the end.",
)
@click.option(
    "--kafka",
    "kafka_bootstrap",
    metavar="BOOTSTRAP",
    help="Replay through the workers of the Kafka runtime at BOOTSTRAP (host:port): publish "
    "to the raw topics, collect from detector.detections; the workers' rules and "
    "correlation settings apply.",
)
@click.option(
    "--kafka-deadline",
    type=click.FloatRange(min=1),
    default=600.0,
    show_default=True,
    help="With --kafka: fail if the workers have not finished the replay after SECONDS.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Parse, normalize and match in this many worker processes (correlation stays in "
    "one): the same output, sooner on several cores. Not with --report, --playbooks, "
    "--sink or --speed, which need whole events in one process.",
)
def replay(
    rule_dirs: tuple[Path, ...],
    no_index: bool,
    allowed_lateness: str,
    max_groups: int,
    checkpoint_path: Path | None,
    checkpoint_every: int,
    from_checkpoint: bool,
    since: datetime | None,
    until: datetime | None,
    only_sources: tuple[str, ...],
    output: Path | None,
    progress_every: float,
    speed: float | None,
    sink_name: str | None,
    report_path: Path | None,
    playbook_paths: tuple[Path, ...],
    actions_output: Path,
    query: str | None,
    resume_after: list[Any] | None,
    page_size: int,
    kafka_bootstrap: str | None,
    kafka_deadline: float,
    workers: int,
    **options: Any,
) -> None:
    """Replay audit logs through the rules and correlations: detections as JSON lines on
    stdout (or --output), the inputs merged in event-time order. An input `es://INDEX`
    (`os://INDEX`) reads that index of the `search:` cluster of --config in time order."""
    paths, index = _index_input(options.pop("paths"))
    if index is None and (query is not None or resume_after is not None):
        raise click.UsageError("--query and --resume-after apply to es:// and os:// inputs")
    if resume_after is not None and from_checkpoint:
        raise click.UsageError("--resume-after and --from-checkpoint: choose one")
    spec = input_spec(paths, **options)
    if kafka_bootstrap is not None:
        unsupported = {
            "--rules": rule_dirs,
            "--checkpoint": checkpoint_path,
            "--sink": sink_name,
            "--speed": speed,
            "--report": report_path,
            "--playbooks": playbook_paths,
            "es:// or os:// inputs": index,
        }
        _refuse(unsupported, "--kafka replays through the workers: no ")
        if workers > 1:
            raise click.UsageError("--workers applies to a replay in this process, not --kafka")
        _replay_through_kafka(kafka_bootstrap, spec, output, kafka_deadline)
        return
    if workers > 1:
        whole_events = {
            "--report": report_path,
            "--playbooks": playbook_paths,
            "--sink": sink_name,
            "--speed": speed,
        }
        _refuse(whole_events, f"--workers {workers}: not with ")
    reader = None
    if index is not None:
        kind, name = index
        connection = spec.settings.search.model_copy(update={"kind": kind})
        reader = IndexReader(connection, name, since, until, query, resume_after, page_size)
    unknown = sorted(set(only_sources) - set(spec.stage.registry.names))
    if unknown:
        known = ", ".join(spec.stage.registry.names)
        raise click.UsageError(f"--only-source {', '.join(unknown)}: unknown (known: {known})")
    if since is not None and until is not None and since >= until:
        raise click.UsageError("--since must be before --until")
    selection = EventSelection(since, until, frozenset(only_sources))
    loaded, correlations, router = _rule_set(rule_dirs, spec, indexed=not no_index)
    settings = EngineSettings(allowed_lateness=_lateness(allowed_lateness), max_groups=max_groups)
    engine = CorrelationEngine(correlations, settings)
    # what a checkpoint was taken of: the files, then the index (read in the same order)
    inputs = [*spec.files, *([f"{reader.scheme}://{reader.index}"] if reader else [])]
    skip = _resume(engine, inputs, checkpoint_path) if from_checkpoint else 0
    sink = _background_sink(spec.settings, sink_name) if sink_name else None
    responder = _replay_responder(spec.settings, playbook_paths, actions_output)
    counts = RunCounts()
    collector = ReportCollector() if report_path is not None else None
    out = sys.stdout.buffer
    # --output: whole lines, appended in batches of one fsynced write each
    log = AppendLog(output) if output is not None else None
    pending: list[bytes] = []

    def flush() -> None:
        if log is None:
            out.flush()
        elif pending:
            log.append(*pending)
            pending.clear()

    def write(detection: bytes) -> None:
        if log is None:
            out.write(detection + b"\n")
            return
        pending.append(detection)
        if len(pending) >= _OUTPUT_BATCH:
            flush()

    # forked before any thread starts (the progress display's, the sink's)
    try:
        pool = (
            Workers(workers, WorkerState(spec.stage, router, engine, selection))
            if workers > 1
            else None
        )
    except BrokenProcessPool as exc:  # a worker died as it started
        raise _worker_died(exc) from exc
    with (
        pool if pool is not None else nullcontext(),
        DeadLetterFile(spec.dead_letter, collector.dead_letter if collector else None) as letters,
        _progress(counts) as progress,
        _sink_started(sink),
    ):
        saver = None
        if checkpoint_path is not None:
            saver = Checkpointer(checkpoint_path, checkpoint_every, inputs, engine, counts, flush)
        total = total_size(spec.files)
        task = progress.add_task("replay", total=total)
        advance: Callable[[int], None] = partial(progress.advance, task)
        hooks: list[Callable[[Event], None]] = []
        tick = None
        if progress.disable and progress_every > 0:
            line = ProgressLine(progress_every, total, counts, partial(click.echo, err=True))
            advance, tick = line.advance, line.tick
            hooks.append(lambda _event: line.tick())
        if speed is not None:
            hooks.append(Pacer(speed, before_wait=flush))
        if collector is not None:
            hooks.append(collector.event_seen)
        stage = DetectionStage(router, engine, collector.event_matched if collector else None)
        if responder is not None:
            hooks.append(responder.seen)
        try:
            detections: Iterable[Detection | bytes]
            if pool is not None:
                detections = parallel_replay(
                    pool,
                    spec.files,
                    spec.stage,
                    engine,
                    letters,
                    counts,
                    advance,
                    skip,
                    saver,
                    tick,
                    reader,
                )
            else:
                detections = replay_detections(
                    spec.files,
                    spec.stage,
                    stage,
                    letters,
                    counts,
                    advance,
                    skip,
                    saver,
                    selection,
                    _each(hooks),
                    reader,
                )
            for detection in detections:
                if isinstance(detection, bytes):  # from the workers, written as they made it
                    write(detection)
                    continue
                if sink is not None:
                    sink.enqueue(detection)
                if collector is not None:
                    collector.detection(detection)
                if responder is not None:
                    responder.detected(detection)
                write(detection.to_json())
        except SearchReadError as exc:
            flush()
            raise click.ClickException(str(exc)) from exc
        except BrokenProcessPool as exc:
            flush()
            raise _worker_died(exc) from exc
        flush()  # before waiting for the sink
    if log is not None:
        log.close()
    _print_summary(counts, spec.dead_letter)
    if selection != EventSelection():
        stderr.print(
            f"filtered {counts.filtered} events (outside --since/--until/--only-source)",
            highlight=False,
        )
    stats = engine.stats
    stderr.print(
        f"rules: {len(loaded.rules)} loaded, {len(router.rules) - len(router.unrouted)} routed "
        f"to a source, {len(correlations.rules)} correlations · detections {counts.detections}"
        + (f" · resumed after {counts.skipped} records" if from_checkpoint else ""),
        highlight=False,
    )
    stderr.print(
        f"correlation: late {stats.late} (dead-lettered) · duplicates {stats.duplicates} · "
        f"ungrouped {stats.ungrouped} · without value {stats.no_value} · suppressed "
        f"{stats.suppressed} · evicted groups {stats.evicted_groups}, values "
        f"{stats.evicted_values}",
        highlight=False,
    )
    for title, number in counts.by_rule.most_common():
        stderr.print(f"  {number:>8}  {title}", highlight=False)
    if sink is not None:
        stderr.print(sink.summary(), highlight=False)
    if collector is not None and report_path is not None:
        _write_report(report_path, "Replay report", loaded, correlations, counts, collector)
    if responder is not None:
        responder.close()
        stderr.print(f"{responder.summary()}; records in {actions_output}", highlight=False)
    if reader is not None:
        position = orjson.dumps(reader.position).decode() if reader.position else "none"
        stderr.print(
            f"index {reader.index}: {reader.read} documents in {reader.pages} pages · "
            f"resume with --resume-after '{position}'",
            highlight=False,
            soft_wrap=True,
        )


@main.command()
@source_options
@rules_option
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Groups (actors, repositories, namespaces) listed per rule.",
)
@report_option
def backtest(
    rule_dirs: tuple[Path, ...], top: int, report_path: Path | None, **options: Any
) -> None:
    """Backtest rules over past logs: per rule, detections per day, the groups that fired
    it most and its share of all detections. Detections go nowhere but the table and the
    --report: no sink, no response."""
    spec = input_spec(**options)
    loaded, correlations, router = _rule_set(rule_dirs, spec)
    engine = CorrelationEngine(correlations, EngineSettings())
    counts = RunCounts()
    collector = ReportCollector()
    with (
        DeadLetterFile(spec.dead_letter, collector.dead_letter) as letters,
        _progress(counts) as progress,
    ):
        task = progress.add_task("backtest", total=total_size(spec.files))
        stage = DetectionStage(router, engine, collector.event_matched)
        for detection in replay_detections(
            spec.files,
            spec.stage,
            stage,
            letters,
            counts,
            partial(progress.advance, task),
            before_event=collector.event_seen,
        ):
            collector.detection(detection)
    _print_summary(counts, spec.dead_letter)
    summaries = rule_summaries(collector, top)
    Console().print(backtest_table(summaries, days(collector)))
    if report_path is not None:
        _write_report(report_path, "Backtest report", loaded, correlations, counts, collector)


@main.command()
@click.argument("scenario", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--to", "base_url", required=True, help="The service's intake: https://host:port")
@click.option(
    "--token-env",
    "token_envs",
    multiple=True,
    required=True,
    help="Environment variable holding the intake secret: NAME for every route, or "
    "ROUTE=NAME for one (kubernetes, gitlab, github, generic/<source>); repeatable.",
)
@click.option(
    "--watch-output",
    "watch",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="A JSON-lines file the service writes detections to (a `file` sink, the staging "
    "output); repeatable.",
)
@click.option(
    "--speed",
    default="max",
    show_default=True,
    callback=lambda _ctx, _param, value: _speed(value),
    help="max: as fast as the intake accepts; N: N times real time by event time.",
)
@click.option(
    "--deadline",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds to wait after the last record for the expected detections.",
)
@click.option(
    "--ca-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="PEM CA bundle that verifies the service's certificate (default: the system's).",
)
@click.option(
    "--client-cert",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="PEM client certificate and key, for routes that require one (mutual TLS).",
)
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The service's configuration, for its `sources:` (Jenkins time zone, declared sources).",
)
def drill(
    scenario: Path,
    base_url: str,
    token_envs: tuple[str, ...],
    watch: tuple[Path, ...],
    speed: float | None,
    deadline: float,
    ca_file: Path | None,
    client_cert: Path | None,
    config: Path | None,
) -> None:
    """Send an incident SCENARIO of replay/ to a running service, its times shifted to end
    now, and report which expected detections arrived and how fast; exit 1 if any did not."""
    import aiohttp

    from detector.drill.client import IntakeError, route_of
    from detector.drill.runner import run_drill
    from detector.drill.scenario import ScenarioError, load_scenario

    settings = _settings(config)
    stage = NormalizeStage(build_registry(settings.sources))
    try:
        loaded = load_scenario(scenario, stage)
    except ScenarioError as exc:
        raise click.UsageError(str(exc)) from exc
    routes = {route_of(record.source) for record in loaded.records}
    secrets = _route_secrets(token_envs, routes)
    stderr.print(
        f"drill {scenario.name}: {len(loaded.records)} records to {base_url}, "
        f"{len(loaded.expected)} detections expected",
        highlight=False,
    )
    try:
        result = asyncio.run(
            run_drill(
                loaded,
                base_url,
                secrets,
                watch,
                deadline,
                speed,
                ZoneInfo(settings.sources.jenkins_timezone),
                partial(stderr.print, highlight=False),
                _tls(ca_file, client_cert),
            )
        )
    except (IntakeError, aiohttp.ClientError) as exc:
        raise click.ClickException(f"sending to {base_url}: {exc}") from exc
    table = Table(title=f"drill {scenario.name}: shifted by {result.shift}")
    for column in ("rule", "group", "arrived", "after start", "after its record"):
        table.add_column(column)
    for arrival in sorted(result.arrived, key=lambda a: a.after_start):
        latency = "-" if arrival.latency is None else f"{arrival.latency:.3f}s"
        group = arrival.expected.group or ""
        table.add_row(
            Text(arrival.expected.title), Text(group), "yes", f"{arrival.after_start:.2f}s", latency
        )
    for missing in result.missing:
        table.add_row(Text(missing.title), Text(missing.group or ""), "[red]NO[/red]", "-", "-")
    Console().print(table)
    arrived = len(result.arrived)
    stderr.print(
        f"{arrived} of {arrived + len(result.missing)} expected detections arrived; "
        f"{sum(result.unexpected.values())} other detections",
        highlight=False,
    )
    if result.missing:
        sys.exit(1)


def _tls(ca_file: Path | None, client_cert: Path | None) -> ssl.SSLContext | None:
    """The TLS client of a drill; None: the defaults (system CAs, no certificate)."""
    if ca_file is None and client_cert is None:
        return None
    context = ssl.create_default_context(cafile=ca_file)
    if client_cert is not None:
        context.load_cert_chain(client_cert)
    return context


def _route_secrets(token_envs: tuple[str, ...], routes: set[str]) -> dict[str, str]:
    """route → secret, from `--token-env` (NAME or ROUTE=NAME), for each of `routes`."""
    names: dict[str, str] = {}
    for item in token_envs:
        route, _, variable = item.rpartition("=")
        names[route] = variable
    secrets = {}
    for route in sorted(routes):
        name = names.get(route, names.get(""))
        value = os.environ.get(name, "") if name else ""
        if not value:
            where = f"${name} is empty or unset" if name else "no --token-env names it"
            raise click.UsageError(f"no secret for intake route {route}: {where}")
        secrets[route] = value
    return secrets


def _rule_set(
    rule_dirs: tuple[Path, ...], spec: InputSpec, indexed: bool = True
) -> tuple[LoadResult, CorrelationSet, RuleRouter]:
    """Load `rule_dirs` (default: the shipped pack), saying on stderr what did not load."""
    loaded = load_rules(rule_dirs or [DEFAULT_RULES])
    correlations = compile_correlations(loaded)
    if loaded.errors:
        stderr.print(
            f"{len(loaded.errors)} rule(s) not loaded; `detector rules lint` says why",
            highlight=False,
        )
    for error in correlations.errors:
        stderr.print(f"correlation not loaded: {error}", highlight=False)
    router = RuleRouter(loaded.rules, spec.stage.registry.routes(), indexed=indexed)
    return loaded, correlations, router


def _write_report(
    path: Path,
    title: str,
    loaded: LoadResult,
    correlations: CorrelationSet,
    counts: RunCounts,
    collector: ReportCollector,
) -> None:
    origin = provenance(sys.argv[1:], loaded.rules, correlations.rules)
    document = render(Report(title, origin, counts, collector))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    stderr.print(f"report: {path}", highlight=False)


def _replay_responder(
    settings: Settings, playbooks: tuple[Path, ...], output: Path
) -> ReplayResponder | None:
    if not playbooks:
        return None
    try:
        return ReplayResponder(settings.responders, list(playbooks), output)
    except ConfigError as exc:
        raise click.UsageError(f"--playbooks: {exc}") from exc


def _index_input(paths: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, str] | None]:
    """The file inputs, and the (kind, index) of an es:// or os:// input (at most one)."""
    schemes = {"es://": "elasticsearch", "os://": "opensearch"}
    indices = [p for p in paths if p[:5] in schemes]
    if len(indices) > 1:
        raise click.UsageError("one es:// or os:// input at a time")
    if not indices:
        return paths, None
    name = indices[0][5:]
    if not name:
        raise click.UsageError(f"{indices[0]}: name the index (es://detector-events)")
    return tuple(p for p in paths if p not in indices), (schemes[indices[0][:5]], name)


def _sort_key(text: str | None) -> list[Any] | None:
    if text is None:
        return None
    try:
        key = orjson.loads(text)
    except orjson.JSONDecodeError:
        key = None
    if not isinstance(key, list) or not key:
        raise click.BadParameter(f"{text!r}: a JSON array, as printed at the end of a replay")
    return key


#: detections appended to --output in one write
_OUTPUT_BATCH = 1000


def _replay_through_kafka(
    bootstrap: str, spec: InputSpec, output: Path | None, deadline: float
) -> None:
    """`replay --kafka`: the records to the workers' raw topics, their detections back."""
    from detector.runtime.kafka.admin import KafkaSetupError, ensure_topics
    from detector.runtime.kafka.replay import KafkaReplay, ReplayTimeoutError, replay_through_kafka
    from detector.runtime.kafka.topics import TopicNames, changelog_topic

    kafka = spec.settings.kafka.model_copy(update={"bootstrap": bootstrap})
    settings = spec.settings.model_copy(update={"kafka": kafka})
    counts = RunCounts()
    run = KafkaReplay(
        bootstrap,
        TopicNames(kafka.topic_prefix),
        spec.stage.registry.names,
        kafka.partitions,
        deadline_seconds=deadline,
    )
    raw_topics = run.names.raws(run.sources)
    try:  # the workers may not have made them yet
        asyncio.run(ensure_topics(settings, raw_topics, changelog_topic(kafka.app_id)))
    except KafkaSetupError as exc:
        raise click.ClickException(str(exc)) from exc
    with DeadLetterFile(spec.dead_letter) as letters:
        events = normalized_events(spec.files, spec.stage, letters, counts, merged=True)
        try:
            detections = replay_through_kafka(run, events)
        except ReplayTimeoutError as exc:
            raise click.ClickException(str(exc)) from exc
    lines = [line + b"\n" for line in detections]
    if output is None:
        sys.stdout.buffer.writelines(lines)
        sys.stdout.buffer.flush()
    else:
        log = AppendLog(output)
        log.append(*detections)
        log.close()
    _print_summary(counts, spec.dead_letter)
    stderr.print(f"detections {len(detections)} (run {run.run})", highlight=False)


def _event_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return from_iso(text)
    except TimestampError as exc:
        raise click.BadParameter(
            f"{exc}; use ISO 8601 with a zone, e.g. 2025-03-11T10:00Z"
        ) from exc


def _speed(text: str) -> float | None:
    """--speed: None for max, else the factor over real time."""
    if text == "max":
        return None
    try:
        factor = float(text)
    except ValueError:
        factor = 0.0
    if not factor > 0 or factor == float("inf"):
        raise click.BadParameter(f"{text!r}: use max or a positive number such as 1, 10, 0.5")
    return factor


def _refuse(options: Mapping[str, object], reason: str) -> None:
    """A usage error naming, after `reason`, the options given (truthy) among `options`."""
    given = [name for name, value in options.items() if value]
    if given:
        raise click.UsageError(reason + ", ".join(given))


def _each(hooks: list[Callable[[Event], None]]) -> Callable[[Event], None] | None:
    """One hook that runs `hooks` in order; None when there are none (nothing to call)."""
    if not hooks:
        return None
    if len(hooks) == 1:
        return hooks[0]

    def run(event: Event) -> None:
        for hook in hooks:
            hook(event)

    return run


def _worker_died(exc: BrokenProcessPool) -> click.ClickException:
    return click.ClickException(
        f"a worker process ended abruptly ({exc}): the output holds what was decided "
        "before; run again, with fewer --workers if memory ran out"
    )


def _background_sink(settings: Settings, name: str) -> BackgroundSink:
    """`--sink NAME`: the configured sink, delivering from a thread. Imported here: the
    sinks' HTTP clients take a tenth of a second that replays without one need not wait."""
    from detector.sinks.background import BackgroundSink, UnknownSinkError

    try:
        return BackgroundSink(settings.sinks, name)
    except UnknownSinkError as exc:
        raise click.UsageError(f"--sink {name}: {exc}") from exc


@contextmanager
def _sink_started(sink: BackgroundSink | None) -> Iterator[None]:
    """Run `sink` for the replay; a sink that cannot start is a clear error."""
    if sink is None:
        yield
        return
    try:
        sink.__enter__()
    except (SecretError, OutboxError) as exc:
        raise click.ClickException(f"--sink {sink.output.name}: {exc}") from exc
    try:
        yield
    except BaseException as exc:
        sink.__exit__(type(exc), exc, None)
        raise
    sink.__exit__(None, None, None)


def _lateness(text: str) -> timedelta | None:
    if text == "unbounded":
        return None
    if text in ("0", "0s"):
        return timedelta(0)
    seconds = parse_timespan(text)
    if seconds is None:
        raise click.BadParameter(f"{text!r}: use unbounded, 0, or a timespan such as 10m")
    return timedelta(seconds=seconds)


def _resume(engine: CorrelationEngine, files: list[str], path: Path | None) -> int:
    """Restore the engine from the checkpoint; the number of input records to skip."""
    if path is None:
        raise click.UsageError("--from-checkpoint needs --checkpoint FILE")
    try:
        saved = checkpoint.load(path)
        if saved.inputs != files:
            raise CheckpointError(f"it was written for other input ({', '.join(saved.inputs)})")
        engine.restore(saved.engine)
    except CheckpointError as exc:
        raise click.UsageError(f"cannot resume from {path}: {exc}") from exc
    return saved.records


rule_paths = click.argument("paths", nargs=-1, type=click.Path(path_type=Path, exists=True))


@main.group()
def rules() -> None:
    """List, lint, test and explain Sigma rules (default: the shipped rules/)."""


def _load(paths: tuple[Path, ...]) -> LoadResult:
    return load_rules(paths or [DEFAULT_RULES])


def _routes() -> dict[str, SourceRoute]:
    return build_registry(_settings(None).sources).routes()


@rules.command("list")
@rule_paths
def rules_list(paths: tuple[Path, ...]) -> None:
    """One line per loaded rule: id, level, logsource, title."""
    loaded = _load(paths)
    router = RuleRouter(loaded.rules, _routes())
    unrouted = {id(r) for r in router.unrouted}
    for rule in sorted(loaded.rules, key=lambda r: (str(r.logsource), r.title)):
        logsource = "/".join(
            part or "*" for part in (rule.logsource.product, rule.logsource.service)
        )
        flag = " (no source)" if id(rule) in unrouted else ""
        click.echo(f"{rule.id or '-'}\t{rule.level or '-'}\t{logsource}{flag}\t{rule.title}")
    stderr.print(
        f"{len(loaded.rules)} rules, {len(loaded.correlations)} correlations, "
        f"{len(loaded.filters)} filters, {len(loaded.errors)} not loaded",
        highlight=False,
    )


@rules.command("doc")
@rule_paths
def rules_doc(paths: tuple[Path, ...]) -> None:
    """The rule catalog (Markdown) on stdout: `detector rules doc rules/ > rules/README.md`."""
    click.echo(render_catalog(list(paths) or [DEFAULT_RULES]), nl=False)


@rules.command("lint")
@rule_paths
def rules_lint(paths: tuple[Path, ...]) -> None:
    """Report rules and correlations that cannot be loaded (file, rule id, reason); exit 1
    if any."""
    loaded = _load(paths)
    correlations = compile_correlations(loaded)
    errors = [*loaded.errors, *correlations.errors]
    for error in errors:
        click.echo(str(error))
    router = RuleRouter(loaded.rules, _routes())
    for rule in router.unrouted:
        click.echo(
            f"{rule.source}: rule {rule.id}: warning: no source feeds logsource "
            f"{rule.logsource.product}/{rule.logsource.service}/{rule.logsource.category}"
        )
    stderr.print(
        f"{len(loaded.rules)} rules and {len(correlations.rules)} correlations loaded, "
        f"{len(errors)} rejected, {len(router.unrouted)} not fed by any source",
        highlight=False,
    )
    if errors:
        sys.exit(1)


@rules.command("test")
@rule_paths
@click.option("--allow-untested", is_flag=True, help="Do not fail on rules without tests.")
def rules_test(paths: tuple[Path, ...], allow_untested: bool) -> None:
    """Run each rule's test events (NAME.tests.yml beside NAME.yml).

    Exits 1 on a failing case, a rule that does not load, or a rule without tests.
    """
    directories = paths or (DEFAULT_RULES,)
    loaded = _load(directories)
    registry = build_registry(_settings(None).sources)
    results = list(run_tests(test_files(directories), loaded.rules, registry))
    failures = [r for r in results if not r.passed]
    for failure in failures:
        expectation = "fire" if failure.expected else "stay silent"
        got = failure.reason or ("fired" if failure.fired else "stayed silent")
        click.echo(
            f"FAIL {failure.test_file} case {failure.index} ({failure.rule}): "
            f"should {expectation}, {got}"
        )
    # A rule is tested when it has a case that must fire and one that must not.
    kinds = {(r.rule, r.expected) for r in results}
    untested = [
        r
        for r in loaded.rules
        if not {((r.id or r.title), True), ((r.id or r.title), False)} <= kinds
    ]
    for rule in untested:
        click.echo(f"UNTESTED {rule.source} ({rule.id or rule.title}): needs match and no_match")
    click.echo(f"{len(results) - len(failures)} passed, {len(failures)} failed")
    if failures or loaded.errors or (untested and not allow_untested):
        sys.exit(1)


@rules.command("export")
@rule_paths
@click.option(
    "--target",
    type=click.Choice(sorted(EXPORT_TARGETS)),
    required=True,
    help="esql, eql, lucene (Elasticsearch) or opensearch (OpenSearch Lucene).",
)
@click.option(
    "--index",
    default=EVENTS_STREAM,
    show_default=True,
    help="The index or data stream of the events (the FROM of ES|QL queries).",
)
def rules_export(paths: tuple[Path, ...], target: str, index: str) -> None:
    """Rules as queries over the engine's event documents: one JSON line per rule on
    stdout; rules the backend cannot express are listed on stderr. Exits 1 only when a
    rule does not load."""
    loaded = _load(paths)
    for error in loaded.errors:
        stderr.print(f"{error.path}: {error.rule_id or '-'}: {error.reason}", highlight=False)
    results = export_rules(loaded, _routes(), target, index)
    out = sys.stdout.buffer
    for result in results:
        if result.error is None:
            line = {"id": result.rule_id, "title": result.title, "queries": result.queries}
            out.write(orjson.dumps({"target": target, **line}) + b"\n")
        else:
            stderr.print(
                f"not exported: {result.title} ({result.rule_id}): {result.error}",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
    out.flush()
    failed = sum(result.error is not None for result in results)
    stderr.print(
        f"{target}: {len(results) - failed} exported, {failed} not expressible in {target}",
        highlight=False,
    )
    if loaded.errors:
        sys.exit(1)


@rules.command("explain")
@click.argument("rule_ref")
@click.argument("event_file", type=click.File("rb"))
@click.option("--rules", "rule_dirs", multiple=True, type=click.Path(path_type=Path, exists=True))
@click.option("--source", help="Read the event as this source instead of detecting it.")
def rules_explain(
    rule_ref: str, event_file: BinaryIO, rule_dirs: tuple[Path, ...], source: str | None
) -> None:
    """Why RULE (a rule file, id or title) did or did not match the raw record in EVENT_FILE."""
    candidate = Path(rule_ref)
    loaded = load_rules([candidate] if candidate.is_file() else (rule_dirs or [DEFAULT_RULES]))
    matching = [
        r for r in loaded.rules if candidate.is_file() or rule_ref in (r.id, r.name, r.title)
    ]
    if len(matching) != 1:
        reasons = "; ".join(str(e) for e in loaded.errors[:3])
        raise click.UsageError(
            f"{rule_ref}: {len(matching)} rules match this reference"
            + (f" ({reasons})" if reasons else "")
        )
    rule = matching[0]
    registry = build_registry(_settings(None).sources)
    stage = NormalizeStage(registry, source)
    results = list(stage.process(RawRecord(event_file.read().strip(), event_file.name)))
    for result in results:
        if isinstance(result, DeadLetter):
            click.echo(f"event not normalized: {result.reason}")
            sys.exit(1)
        explain_event(rule, result, registry.routes())


def explain_event(rule: CompiledRule, event: Event, routes: dict[str, SourceRoute]) -> None:
    """Print routing, each search identifier, the filters and the verdict."""
    router = RuleRouter([rule], routes)
    sees_raw = rule in router.raw[event.event_source].rules
    sees_normalized = rule in router.normalized[event.event_source].rules
    click.echo(f"rule: {rule.title} ({rule.id})")
    click.echo(f"event: {event.event_source} {event.event_action} ({event.event_id})")
    if not (sees_raw or sees_normalized):
        route = routes[event.event_source]
        click.echo(
            f"routing: NO — the rule's logsource {rule.logsource.product}/"
            f"{rule.logsource.service} does not cover source {event.event_source} "
            f"({route.product}/{route.service}), so it never sees this event"
        )
        click.echo("verdict: no match")
        return
    record = event.raw if sees_raw else event.to_dict()
    click.echo(f"routing: yes, on the {'raw record' if sees_raw else 'normalized event'}")
    explanation = rule.explain(record)
    for name, held in explanation.identifiers.items():
        click.echo(f"  {name}: {'true' if held else 'false'}")
    for condition in rule.rule.detection.condition:
        click.echo(f"condition {condition!r}: {'true' if explanation.condition else 'false'}")
    for name, held in explanation.filters.items():
        click.echo(f"  filter {name}: {'passes' if held else 'excludes the event'}")
    click.echo(f"verdict: {'MATCH' if explanation.matched else 'no match'}")


def _print_summary(counts: RunCounts, dead_letter: Path) -> None:
    elapsed = counts.elapsed
    rate = counts.read / elapsed if elapsed > 0 else 0.0
    stderr.print(
        f"read {counts.read} · normalized {counts.normalized} · "
        f"dead-lettered {counts.dead_lettered}"
        + (f" (to {dead_letter})" if counts.dead_lettered else "")
        + f" · {elapsed:.2f}s · {rate:,.0f} events/s",
        highlight=False,
    )
    if counts.by_source:
        by_source = ", ".join(f"{k} {v}" for k, v in sorted(counts.by_source.items()))
        stderr.print(f"by source: {by_source}", highlight=False)


class _EventRate(ProgressColumn):
    """Events per second so far, read from the run's counts when the bar refreshes."""

    def __init__(self, counts: RunCounts) -> None:
        super().__init__()
        self.counts = counts

    def render(self, task: Task) -> Text:
        elapsed = self.counts.elapsed
        rate = self.counts.read / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:,.0f} events/s", style="progress.data.speed")


def _progress(counts: RunCounts) -> Progress:
    """A byte-based progress bar on stderr (bytes read of the total, events/s, ETA);
    silent when stderr is not a terminal."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        _EventRate(counts),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,
    )


@main.command()
@click.option("--config", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--kafka",
    "kafka_bootstrap",
    metavar="BOOTSTRAP",
    help="Run as a worker of the Kafka runtime at BOOTSTRAP (host:port); also `kafka: "
    "bootstrap:` in the config. Any number of workers share the work.",
)
def run(config: Path | None, kafka_bootstrap: str | None) -> None:
    """Run the live service: HTTP intake, rules, correlations, alert sinks, /metrics."""
    from detector.runtime.service import serve

    settings = _settings(config)
    if kafka_bootstrap is not None:
        kafka = settings.kafka.model_copy(update={"bootstrap": kafka_bootstrap})
        settings = settings.model_copy(update={"kafka": kafka})
    if settings.kafka.bootstrap is not None and settings.service.workers > 1:
        raise click.UsageError(
            "service.workers applies to the embedded runtime; the Kafka runtime uses more "
            "cores by running more workers (`detector run --kafka`)"
        )
    try:
        if settings.kafka.bootstrap is not None:
            from detector.runtime.kafka.admin import KafkaSetupError
            from detector.runtime.kafka.app import run_worker

            try:
                run_worker(settings)
            except KafkaSetupError as exc:
                raise click.ClickException(str(exc)) from exc
            return
        serve(settings)
    except (
        ConfigError,
        RulesNotLoadedError,
        SecretError,
        IntakeConfigError,
        PipelineFailedError,
        OutboxError,
        WorkerStartError,
    ) as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:  # the port is taken, a path cannot be written
        raise click.ClickException(f"cannot run: {exc}") from exc


main.add_command(playbooks)
main.add_command(actions)


@main.group("config")
def config_group() -> None:
    """Check a configuration file."""


@config_group.command("check")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
def config_check(file: Path) -> None:
    """Validate FILE and say what `detector run` would do with it."""
    from detector.runtime.service import describe

    settings = _settings(file)
    try:
        click.echo(describe(settings))
    except (RulesNotLoadedError, SecretError, IntakeConfigError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from exc


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
