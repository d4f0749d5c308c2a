"""The SVG timeline: every detection lands in exactly one bar of its lane, inside the plot."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from detector.report.chart import LABEL_WIDTH, WIDTH, Lane, timeline_svg

times = st.lists(st.floats(min_value=0, max_value=10_000), min_size=1, max_size=200)


@given(st.lists(times, min_size=1, max_size=5))
def test_each_detection_is_counted_once_in_a_bar_inside_the_plot(lanes: list[list[float]]) -> None:
    start = min(min(lane) for lane in lanes)
    end = max(max(lane) for lane in lanes)
    svg = timeline_svg([Lane(f"rule {n}", lane) for n, lane in enumerate(lanes)], start, end, "t")
    bars = re.findall(
        r'<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)" [^>]*><title>(\d+) from', svg
    )
    assert sum(int(count) for _, _, count in bars) == sum(len(lane) for lane in lanes)
    for x, width, _ in bars:
        assert float(x) >= LABEL_WIDTH and float(x) + float(width) <= WIDTH


def test_labels_are_escaped() -> None:
    svg = timeline_svg([Lane("<script>x</script>", [1.0])], 0.0, 2.0, "a & b")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "a &amp; b" in svg
