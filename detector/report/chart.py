"""Timeline charts as inline SVG, drawn here so a report needs no script nor network: one
lane per row (a rule, an identity), detections binned over the replayed time, each bin a
bar whose height is its count relative to the busiest bin of the chart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

WIDTH = 1160
LABEL_WIDTH = 360
COUNT_WIDTH = 60
LANE_HEIGHT = 22
AXIS_HEIGHT = 30
BINS = 96
TICKS = 6
DAY = 86_400.0

LEVEL_COLOURS = {
    "critical": "#7b1fa2",
    "high": "#d32f2f",
    "medium": "#ef6c00",
    "low": "#f9a825",
    "informational": "#1976d2",
}
DEFAULT_COLOUR = "#546e7a"


@dataclass(frozen=True)
class Lane:
    """One row of a timeline: its label, colour and the detection times (epoch seconds)."""

    label: str
    times: Sequence[float]
    colour: str = DEFAULT_COLOUR


def colour_of(level: str | None) -> str:
    return LEVEL_COLOURS.get(level or "", DEFAULT_COLOUR)


def timeline_svg(lanes: Sequence[Lane], start: float, end: float, title: str) -> str:
    """An SVG timeline of `lanes` over `[start, end]` (epoch seconds)."""
    span = max(end - start, 1.0)
    plot = WIDTH - LABEL_WIDTH - COUNT_WIDTH
    bin_width = plot / BINS
    binned = [_bins(lane.times, start, span) for lane in lanes]
    busiest = max((max(counts) for counts in binned if counts), default=1) or 1
    height = AXIS_HEIGHT + LANE_HEIGHT * len(lanes) + 4
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" role="img" '
        f'width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}">',
        f"<title>{escape(title)}</title>",
    ]
    for index, (lane, counts) in enumerate(zip(lanes, binned, strict=True)):
        top = AXIS_HEIGHT + index * LANE_HEIGHT
        if index % 2 == 0:
            parts.append(
                f'<rect x="0" y="{top}" width="{WIDTH}" height="{LANE_HEIGHT}" fill="#f4f6f8"/>'
            )
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{top + 15}" text-anchor="end" class="lane">'
            f"{escape(_shorten(lane.label))}<title>{escape(lane.label)}</title></text>"
        )
        for number, count in enumerate(counts):
            if not count:
                continue
            bar = max(2.0, (LANE_HEIGHT - 4) * count / busiest)
            x = LABEL_WIDTH + number * bin_width
            when = _label(start + number * span / BINS)
            parts.append(
                f'<rect x="{x:.1f}" y="{top + LANE_HEIGHT - 2 - bar:.1f}" '
                f'width="{max(bin_width - 1, 1):.1f}" height="{bar:.1f}" fill="{lane.colour}">'
                f"<title>{count} from {when}</title></rect>"
            )
        parts.append(
            f'<text x="{WIDTH - 6}" y="{top + 15}" text-anchor="end" class="count">'
            f"{len(lane.times)}</text>"
        )
    for tick in range(TICKS + 1):
        x = LABEL_WIDTH + plot * tick / TICKS
        parts.append(
            f'<line x1="{x:.1f}" y1="{AXIS_HEIGHT - 6}" x2="{x:.1f}" y2="{height}" '
            f'stroke="#c7ccd1" stroke-width="1"/>'
        )
        anchor = "start" if tick == 0 else "end" if tick == TICKS else "middle"
        parts.append(
            f'<text x="{x:.1f}" y="{AXIS_HEIGHT - 10}" text-anchor="{anchor}" class="axis">'
            f"{_tick(start + span * tick / TICKS, span)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def sparkline_svg(counts: Sequence[int], labels: Sequence[str], colour: str) -> str:
    """A small bar chart of `counts` (one bar per label, e.g. per day)."""
    width, height = max(6 * len(counts), 24), 24
    busiest = max(counts, default=1) or 1
    bar = width / max(len(counts), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="spark" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">'
    ]
    for index, (count, label) in enumerate(zip(counts, labels, strict=True)):
        size = max(1.0, (height - 2) * count / busiest) if count else 0.0
        parts.append(
            f'<rect x="{index * bar:.1f}" y="{height - size:.1f}" width="{max(bar - 1, 1):.1f}" '
            f'height="{size:.1f}" fill="{colour}"><title>{escape(label)}: {count}</title></rect>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _bins(times: Sequence[float], start: float, span: float) -> list[int]:
    counts = [0] * BINS
    for when in times:
        counts[min(int((when - start) / span * BINS), BINS - 1)] += 1
    return counts


def _label(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")


def _tick(epoch: float, span: float) -> str:
    """An axis label as short as the span allows (the caption gives the full range)."""
    pattern = "%H:%M" if span <= DAY else "%m-%d %H:%M" if span <= 7 * DAY else "%Y-%m-%d"
    return datetime.fromtimestamp(epoch, UTC).strftime(pattern)


def _shorten(text: str, limit: int = 56) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
