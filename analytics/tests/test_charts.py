"""The SVG charts: pure functions, no database (number formats: core/tests/test_formatting.py)."""

import re
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest

from analytics import chart_scales, charts
from core.formatting import format_money, format_ms, format_percent

SVG = "{http://www.w3.org/2000/svg}"
LABELS = ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04"]


def parse(markup: str) -> ET.Element:
    root = ET.fromstring(markup)
    assert root.tag == f"{SVG}svg"
    return root


def by_class(root: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in root.iter(f"{SVG}{tag}") if cls in e.get("class", "").split()]


def title_of(element: ET.Element) -> str:
    return element.find(f"{SVG}title").text


# --- Stacked bars -----------------------------------------------------------------------------


def test_bars_are_valid_accessible_svg():
    markup = charts.stacked_bars(LABELS, {"a": [1, 2, 3, 4]}, title="Calls per day")
    root = parse(markup)
    assert root.get("role") == "img"
    assert root.get("aria-label") == "Calls per day"
    assert root.find(f"{SVG}title").text == "Calls per day"
    assert root.get("viewBox").startswith(f"0 0 {charts.WIDTH} ")
    assert "style=" not in markup and "<script" not in markup


def test_bar_heights_are_proportional_to_the_values():
    root = parse(charts.stacked_bars(LABELS, {"calls": [1, 2, 4, 0]}, title="t"))
    bars = by_class(root, "rect", "chart-bar")
    assert len(bars) == 3  # a zero draws nothing
    heights = [float(b.get("height")) for b in bars]
    assert heights[1] == pytest.approx(2 * heights[0], abs=0.02)
    assert heights[2] == pytest.approx(4 * heights[0], abs=0.02)
    # Bars stand on the same baseline.
    bottoms = {round(float(b.get("y")) + float(b.get("height")), 1) for b in bars}
    assert len(bottoms) == 1


def test_stacked_segments_sit_on_each_other_and_keep_their_colours():
    root = parse(
        charts.stacked_bars(["d1", "d2"], {"input": [30, 10], "output": [10, 30]}, title="Tokens")
    )
    bars = by_class(root, "rect", "chart-bar")
    first_day = [b for b in bars if float(b.get("x")) < 300]
    lower, upper = sorted(first_day, key=lambda b: -float(b.get("y")))
    assert float(upper.get("y")) + float(upper.get("height")) == pytest.approx(
        float(lower.get("y")), abs=0.02
    )
    assert float(lower.get("height")) == pytest.approx(3 * float(upper.get("height")), abs=0.02)
    assert lower.get("fill") == charts.PALETTE[0] and upper.get("fill") == charts.PALETTE[1]
    # Both days stack to the same total, so both columns reach the same height.
    tops = sorted(float(b.get("y")) for b in bars)
    assert tops[0] == pytest.approx(tops[1], abs=0.02)


def test_bars_carry_hover_titles_and_a_legend():
    root = parse(
        charts.stacked_bars(
            ["2025-01-01"],
            {"gpt-4o": [Decimal("0.5")], "gpt-4o-mini": [Decimal("1.25")]},
            title="Cost",
            value_format=format_money,
        )
    )
    titles = [title_of(b) for b in by_class(root, "rect", "chart-bar")]
    assert titles == ["2025-01-01 · gpt-4o: $0.5000", "2025-01-01 · gpt-4o-mini: $1.25"]
    band = by_class(root, "rect", "chart-band")[0]
    assert title_of(band).splitlines() == [
        "2025-01-01: $1.75",
        "gpt-4o: $0.5000",
        "gpt-4o-mini: $1.25",
    ]
    legend = [
        t.text for g in by_class(root, "g", "chart-legend-item") for t in g.iter(f"{SVG}text")
    ]
    assert legend == ["gpt-4o", "gpt-4o-mini"]


def test_axis_ticks_are_round_and_cover_the_highest_stack():
    root = parse(charts.stacked_bars(["a", "b"], {"x": [70, 3], "y": [20, 0]}, title="t"))
    ticks = [t.text for t in by_class(root, "text", "chart-tick")]
    assert ticks[:5] == ["0", "25", "50", "75", "100"]
    assert ticks[5:] == ["a", "b"]


def test_long_ranges_label_only_some_days():
    labels = [f"day {i}" for i in range(30)]
    root = parse(charts.stacked_bars(labels, {"x": list(range(30))}, title="t"))
    shown = [t.text for t in by_class(root, "text", "chart-tick") if t.text.startswith("day")]
    assert 2 <= len(shown) <= charts.MAX_X_LABELS
    assert shown[0] == "day 0"
    assert len(by_class(root, "rect", "chart-band")) == 30


def test_bars_with_a_rate_line_on_a_second_axis():
    markup = charts.stacked_bars(
        LABELS,
        {"Succeeded": [9, 8, 0, 10], "Failed": [1, 2, 0, 0]},
        title="Calls",
        line=("Error rate", [0.1, 0.2, None, 0.0]),
        line_format=format_percent,
    )
    root = parse(markup)
    (path,) = by_class(root, "path", "chart-line")
    assert path.get("d").count("M") == 2  # the day without calls is a gap
    dots = by_class(root, "circle", "chart-dot")
    assert [title_of(d) for d in dots] == [
        "2025-01-01 · Error rate: 10.0%",
        "2025-01-02 · Error rate: 20.0%",
        "2025-01-04 · Error rate: 0.0%",
    ]
    right_ticks = [t.text for t in by_class(root, "text", "chart-tick") if t.text.endswith("%")]
    assert right_ticks == ["0%", "5%", "10%", "15%", "20%"]  # the unit on the zero too
    legend = [
        t.text for g in by_class(root, "g", "chart-legend-item") for t in g.iter(f"{SVG}text")
    ]
    assert legend == ["Succeeded", "Failed", "Error rate"]


def test_bars_without_data():
    root = parse(charts.stacked_bars([], {}, title="Empty"))
    assert [t.text for t in root.iter(f"{SVG}text")] == ["No data"]
    # All-zero days still draw the axes, from 0 to 1.
    root = parse(charts.stacked_bars(["a"], {"x": [0]}, title="Zero"))
    assert not by_class(root, "rect", "chart-bar")
    assert next(t.text for t in by_class(root, "text", "chart-tick")) == "0"


def test_series_of_the_wrong_length_are_refused():
    with pytest.raises(ValueError, match="has 2 values for 3 labels"):
        charts.stacked_bars(["a", "b", "c"], {"x": [1, 2]}, title="t")
    with pytest.raises(ValueError):
        charts.lines(["a"], {"x": [1, 2]}, title="t")


# --- Lines -------------------------------------------------------------------------------------


def test_lines_leave_gaps_for_missing_values():
    markup = charts.lines(
        [*LABELS, "2025-01-05"],
        {"p50": [100, 200, None, 300, 400], "p95": [None, None, None, None, 900]},
        title="Latency",
        value_format=format_ms,
    )
    root = parse(markup)
    p50, p95 = by_class(root, "path", "chart-line")
    assert re.findall(r"[ML]", p50.get("d")) == ["M", "L", "M", "L"]
    assert re.findall(r"[ML]", p95.get("d")) == ["M"]
    dots = by_class(root, "circle", "chart-dot")
    assert len(dots) == 5
    assert title_of(dots[0]) == "2025-01-01 · p50: 100 ms"
    assert title_of(dots[-1]) == "2025-01-05 · p95: 900 ms"
    assert p50.get("stroke") == charts.PALETTE[0] and p95.get("stroke") == charts.PALETTE[1]


def test_line_points_are_placed_by_value():
    root = parse(charts.lines(["a", "b", "c"], {"x": [0, 50, 100]}, title="t"))
    ys = [float(d.get("cy")) for d in by_class(root, "circle", "chart-dot")]
    assert ys[0] - ys[1] == pytest.approx(ys[1] - ys[2], abs=0.02)
    assert ys[0] > ys[1] > ys[2]  # higher values sit higher
    xs = [float(d.get("cx")) for d in by_class(root, "circle", "chart-dot")]
    assert xs[1] - xs[0] == pytest.approx(xs[2] - xs[1], abs=0.02)


def test_lines_with_only_missing_values():
    root = parse(charts.lines(["a", "b"], {"x": [None, None]}, title="t"))
    assert not by_class(root, "path", "chart-line")
    assert not by_class(root, "circle", "chart-dot")


# --- Escaping ----------------------------------------------------------------------------------


def test_every_text_is_escaped():
    hostile = '<script>alert("x")</script>'
    markup = charts.stacked_bars(
        [hostile],
        {hostile: [1], "a&b": [2]},
        title=f"Title {hostile}",
        line=(hostile, [0.5]),
    ) + charts.lines([hostile], {hostile: [1]}, title=hostile)
    assert "<script" not in markup
    assert "&lt;script&gt;" in markup and "a&amp;b" in markup
    for svg in re.findall(r"<svg.*?</svg>", markup):
        root = parse(svg)
        texts = [t.text for t in root.iter(f"{SVG}text")] + [
            t.text for t in root.iter(f"{SVG}title")
        ]
        assert any(text and hostile in text for text in texts)
    root = parse(charts.stacked_bars(["d"], {"x": [1]}, title='say "hi" & <bye>'))
    assert root.get("aria-label") == 'say "hi" & <bye>'


# --- Scales and formats ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("maximum", "ticks"),
    [
        (0, [0, 0.25, 0.5, 0.75, 1]),
        (None, [0, 0.25, 0.5, 0.75, 1]),
        (4, [0, 1, 2, 3, 4]),
        (90, [0, 25, 50, 75, 100]),
        (101, [0, 50, 100, 150]),
        (0.0003, [0, 0.0001, 0.0002, 0.0003]),
        (7300, [0, 2000, 4000, 6000, 8000]),
    ],
)
def test_nice_ticks(maximum, ticks):
    assert charts.nice_ticks(maximum) == pytest.approx(ticks)


# --- Units on the axes, clipped scales, links and hooks for the script --------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "$0"),
        (Decimal("0.0025"), "$0.0025"),
        (0.005, "$0.005"),
        (0.5, "$0.50"),
        (0.25, "$0.25"),
        (2, "$2"),
        (2.5, "$2.50"),
        (1500, "$1.5k"),
        (None, "—"),
    ],
)
def test_money_axis_labels(value, text):
    assert chart_scales.money_axis(value) == text


def test_axis_labels_carry_their_unit_at_zero():
    assert chart_scales.percent_axis(0) == "0%" and chart_scales.percent_axis(0.025) == "2.5%"
    assert chart_scales.ms_axis(0) == "0 ms" and chart_scales.ms_axis(1500) == "1,500 ms"
    assert chart_scales.count_axis(0) == "0" and chart_scales.count_axis(2500) == "2.5k"
    root = parse(
        charts.stacked_bars(
            LABELS,
            {"a": [Decimal("0.1"), Decimal("0.2"), 0, 0]},
            title="Cost",
            value_format=format_money,
            axis_format=chart_scales.money_axis,
        )
    )
    ticks = [t.text for t in by_class(root, "text", "chart-tick") if t.text.startswith("$")]
    assert ticks == ["$0", "$0.05", "$0.10", "$0.15", "$0.20"]
    # Tooltips keep the full money format.
    assert title_of(by_class(root, "rect", "chart-bar")[0]) == "2025-01-01 · a: $0.1000"


@pytest.mark.parametrize(
    ("values", "limit"),
    [
        ([1, 2, 3, 2, 1, 2, 3, 2], None),  # nothing stands out
        ([1, 2, 3, 2, 1, 2, 3, 40], 3),  # one costly day
        ([1, 2, 3, 2, 1, 2, 30, 40, 1, 2, 2, 2, 1, 2, 3, 1], 3),  # two of sixteen
        ([1, 40], None),  # too few days to hide one
        ([0, 0, 0, 0, 0, 0], None),
    ],
)
def test_clip_limit(values, limit):
    assert chart_scales.clip_limit(values) == limit


def test_one_costly_day_is_clipped_and_says_its_value():
    values = [1, 2, 3, 2, 1, 2, 3, 2, 1, 90]
    labels = [f"2025-01-{d:02d}" for d in range(1, 11)]
    root = parse(charts.stacked_bars(labels, {"x": values}, title="t", clip=True))
    ticks = [float(t.text) for t in by_class(root, "text", "chart-tick") if "-" not in t.text]
    assert 3 <= ticks[-1] <= 5  # the scale fits the ordinary days, not the costly one
    bars = by_class(root, "rect", "chart-bar")
    heights = [float(b.get("height")) for b in bars]
    assert heights[-1] == pytest.approx(charts.PLOT_HEIGHT, abs=0.02)  # drawn to the top
    assert heights[2] == pytest.approx(heights[0] * 3, abs=0.02)  # the rest stay proportional
    assert heights[2] > charts.PLOT_HEIGHT / 2  # and are no longer flat
    (label,) = by_class(root, "text", "chart-clip-label")
    assert label.text == "↑ 90" and label.get("data-index") == "9"
    assert len(by_class(root, "path", "chart-break")) == 1
    assert title_of(bars[-1]) == "2025-01-10 · x: 90"  # the tooltip keeps the real value
    # Without clipping, the scale covers the costly day.
    root = parse(charts.stacked_bars(labels, {"x": values}, title="t"))
    assert not by_class(root, "text", "chart-clip-label")
    ticks = [float(t.text) for t in by_class(root, "text", "chart-tick") if "-" not in t.text]
    assert ticks[-1] >= 90


def test_a_slow_day_is_clipped_on_a_line_chart():
    labels = [f"d{i}" for i in range(8)]
    root = parse(
        charts.lines(
            labels,
            {"p95": [100, 120, 110, 130, 90, 100, 9000, 120]},
            title="t",
            value_format=format_ms,
            axis_format=chart_scales.ms_axis,
            clip=True,
        )
    )
    (clipped,) = by_class(root, "circle", "chart-clipped")
    assert title_of(clipped) == "d6 · p95: 9,000 ms"
    assert [t.text for t in by_class(root, "text", "chart-clip-label")] == ["↑ 9,000 ms"]
    ticks = [t.text for t in by_class(root, "text", "chart-tick") if t.text.endswith("ms")]
    assert ticks[0] == "0 ms" and ticks[-1] == "150 ms"


def test_days_link_to_their_report_and_carry_hooks_for_the_script():
    links = [f"/report/?day={label}&x=<1>" for label in LABELS]
    markup = charts.stacked_bars(
        LABELS, {"a": [1, 2, 3, 4], "b": [0, 1, 0, 1]}, title="t", links=links
    )
    root = parse(markup)
    anchors = by_class(root, "a", "chart-day")
    assert [a.get("href") for a in anchors] == links  # escaped in the markup, intact parsed
    assert "&amp;x=&lt;1&gt;" in markup
    assert [a.get("data-index") for a in anchors] == ["0", "1", "2", "3"]
    band = anchors[3].find(f"{SVG}rect")
    assert title_of(band).splitlines() == ["2025-01-04: 5", "a: 4", "b: 1"]
    bars = by_class(root, "rect", "chart-bar")
    assert {(b.get("data-series"), b.get("data-index"), b.get("data-value")) for b in bars} >= {
        ("0", "3", "4.0"),
        ("1", "3", "1.0"),
    }
    assert root.get("data-top-value") == "6"
    assert [g.get("data-series") for g in by_class(root, "g", "chart-legend-item")] == ["0", "1"]
    lines_root = parse(charts.lines(LABELS, {"p50": [1, 2, 3, 4]}, title="t", links=links))
    assert len(by_class(lines_root, "a", "chart-day")) == 4
    assert by_class(lines_root, "path", "chart-line")[0].get("data-series") == "0"
