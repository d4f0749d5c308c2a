"""The backtest's table on the terminal (rich): the same per-rule summaries as the HTML
report's "Rules that fired"."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from detector.report.collect import RuleSummary

#: days shown as their own columns; longer periods get one sparkline column
MAX_DAY_COLUMNS = 7
BLOCKS = "▁▂▃▄▅▆▇█"


def backtest_table(summaries: Sequence[RuleSummary], days: Sequence[str]) -> Table:
    """One row per rule: level, detections, share, detections per day, top groups."""
    table = Table(title=f"Backtest: {len(summaries)} rules fired over {len(days)} day(s)")
    table.add_column("rule", overflow="fold", ratio=3)
    table.add_column("level")
    table.add_column("detections", justify="right")
    table.add_column("share", justify="right")
    by_column = len(days) <= MAX_DAY_COLUMNS
    if by_column:
        for day in days:
            table.add_column(day[5:], justify="right")
    else:
        table.add_column(f"per day {days[0]} … {days[-1]}" if days else "per day")
    table.add_column("top groups", overflow="fold", ratio=2)
    for summary in summaries:
        per_day = [str(n) for n in summary.per_day] if by_column else [sparkline(summary.per_day)]
        groups = "\n".join(f"{group} ({count})" for group, count in summary.top_groups)
        table.add_row(  # Text, not markup: titles and groups may hold brackets from logs
            Text.assemble(summary.title, "\n", (summary.rule_id, "dim")),
            summary.level or "-",
            str(summary.count),
            f"{summary.share:.1%}",
            *per_day,
            Text(groups),
        )
    return table


def sparkline(counts: Sequence[int]) -> str:
    """Counts as block characters, scaled to the largest; a day without detections is a
    dot, the maximum is given after."""
    busiest = max(counts, default=0)
    if not busiest:
        return ""
    bars = "".join(
        BLOCKS[min(len(BLOCKS) - 1, (len(BLOCKS) * n - 1) // busiest)] if n else "·" for n in counts
    )
    return f"{bars} max {busiest}/day"
