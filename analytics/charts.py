"""Server-rendered SVG charts for the AI usage dashboard (scales: chart_scales.py). Pure.

Each function returns one ``<svg>`` string: no script or style (the site's CSP holds; colours are
presentation attributes), every text escaped, ``role="img"`` with a ``<title>`` per day's band.
Values are plotted from zero; ``None`` is a gap (lines) or nothing (bars). A few days far above
the rest are clipped (``clip=True``, see chart_scales.py). With ``links``, each day's band is a
link (the day's report). The ``data-*`` attributes are for static/analytics/charts.js, which
adds hover read-outs and series toggles on top; without it the chart works as it is.
"""

import math
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from html import escape

from core.formatting import format_count, format_percent

from .chart_scales import nice_ticks, percent_axis, scale_ticks

__all__ = ["lines", "nice_ticks", "stacked_bars"]

# Paul Tol's "bright" scheme: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb")
OVERLAY_COLOR = "#332288"

WIDTH = 560
PLOT_HEIGHT = 180
FONT_SIZE = 12
CHAR_WIDTH = 7.0  # rough width of one character at FONT_SIZE, for the legend layout
MARGIN_LEFT = 72
MARGIN_RIGHT = 16
MARGIN_RIGHT_AXIS = 56
MARGIN_BOTTOM = 26
LEGEND_ROW = 18
CLIP_ROOM = 16  # space above the plot for the values of clipped days
MAX_X_LABELS = 6
BAR_FILL = 0.72  # share of a day's band the bar takes

type Number = float | int | Decimal
type Formatter = Callable[[Number | None], str]


def _num(value: Number | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class _Frame:
    """The geometry of one chart: a plot area with one band per label, and the legend above."""

    def __init__(self, n: int, legend_rows: int, *, right_axis: bool, clipped: bool = False):
        self.n = n
        self.left = MARGIN_LEFT
        self.right = WIDTH - (MARGIN_RIGHT_AXIS if right_axis else MARGIN_RIGHT)
        self.top = 8 + legend_rows * LEGEND_ROW + (6 if legend_rows else 0)
        self.top += CLIP_ROOM if clipped else 0
        self.bottom = self.top + PLOT_HEIGHT
        self.height = self.bottom + MARGIN_BOTTOM
        self.band = (self.right - self.left) / max(n, 1)

    def x_center(self, index: int) -> float:
        return self.left + (index + 0.5) * self.band

    def y(self, value: float, top_value: float) -> float:
        """The y of ``value``, never above the plot's top (a clipped value sits on it)."""
        return self.bottom - (min(value, top_value) / top_value) * PLOT_HEIGHT


def _f(value: float) -> str:
    """A coordinate, short: 12.0 -> ``12``, 12.3456 -> ``12.35``."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _legend(entries: Sequence[tuple[str, str, str]]) -> tuple[list[str], int]:
    """Lay out (name, colour, kind) entries in rows; kind is ``box`` or ``line``."""
    parts: list[str] = []
    x: float = MARGIN_LEFT
    row = 0
    for index, (name, color, kind) in enumerate(entries):
        width = 16 + len(name) * CHAR_WIDTH + 14
        if x + width > WIDTH - MARGIN_RIGHT and x > MARGIN_LEFT:
            x, row = MARGIN_LEFT, row + 1
        y = 8 + row * LEGEND_ROW
        if kind == "line":
            swatch = (
                f'<line x1="{_f(x)}" y1="{_f(y + 6)}" x2="{_f(x + 12)}" y2="{_f(y + 6)}" '
                f'stroke="{color}" stroke-width="2.5"/>'
            )
        else:
            swatch = f'<rect x="{_f(x)}" y="{y}" width="12" height="12" rx="2" fill="{color}"/>'
        parts.append(
            f'<g class="chart-legend-item" data-series="{index}">{swatch}'
            f'<text class="chart-text" x="{_f(x + 16)}" y="{y + 10}">{escape(name)}</text></g>'
        )
        x += width
    return parts, (row + 1 if entries else 0)


def _open(frame: _Frame, title: str, top_value: float | None = None) -> list[str]:
    t = escape(title)
    geometry = (
        f' data-plot-top="{frame.top}" data-plot-bottom="{frame.bottom}" '
        f'data-top-value="{top_value!r}"'
        if top_value is not None
        else ""
    )
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} '
        f'{frame.height}" role="img" aria-label="{t}" font-size="{FONT_SIZE}" fill="#333"'
        f"{geometry}>",
        f"<title>{t}</title>",
    ]


def _y_axis(frame: _Frame, ticks: list[float], fmt: Formatter, *, right: bool = False) -> list[str]:
    parts = []
    top_value = ticks[-1]
    for tick in ticks:
        y = _f(frame.y(tick, top_value))
        if right:
            x, anchor = frame.right + 6, "start"
        else:
            x, anchor = frame.left - 6, "end"
            parts.append(
                f'<line class="chart-grid" x1="{frame.left}" y1="{y}" x2="{_f(frame.right)}" '
                f'y2="{y}" stroke="#ddd" stroke-width="1"/>'
            )
        parts.append(
            f'<text class="chart-text chart-tick" x="{_f(x)}" y="{y}" dy="0.32em" '
            f'text-anchor="{anchor}">{escape(fmt(tick))}</text>'
        )
    return parts


def _x_axis(frame: _Frame, labels: Sequence[str]) -> list[str]:
    every = max(1, math.ceil(len(labels) / MAX_X_LABELS))
    parts = [
        f'<line class="chart-axis" x1="{frame.left}" y1="{frame.bottom}" x2="{_f(frame.right)}" '
        f'y2="{frame.bottom}" stroke="#999" stroke-width="1"/>'
    ]
    for index, label in enumerate(labels):
        if index % every:
            continue
        parts.append(
            f'<text class="chart-text chart-tick" x="{_f(frame.x_center(index))}" '
            f'y="{frame.bottom + 16}" text-anchor="middle">{escape(str(label))}</text>'
        )
    return parts


def _bands(
    frame: _Frame,
    labels: Sequence[str],
    summaries: Sequence[Sequence[str]],
    links: Sequence[str] | None,
) -> list[str]:
    """One transparent band per day, the whole plot's height: its title lists the day's values,
    and with ``links`` it is a link (a click on the day opens its report)."""
    parts = []
    for index, (label, lines_) in enumerate(zip(labels, summaries, strict=True)):
        band = (
            f'<rect class="chart-band" data-index="{index}" x="{_f(frame.left + index * frame.band)}"'
            f' y="{frame.top}" width="{_f(frame.band)}" height="{PLOT_HEIGHT}" fill="transparent">'
            f"<title>{escape(chr(10).join(lines_))}</title></rect>"
        )
        if links is not None:
            band = (
                f'<a class="chart-day" href="{escape(links[index])}" data-index="{index}" '
                f'aria-label="{escape(f"{label}: open the report of the day")}">{band}</a>'
            )
        parts.append(band)
    return parts


def _clip_mark(frame: _Frame, index: int, x: float, width: float, text: str) -> list[str]:
    """A break across the top of a clipped bar or point, and its real value above the plot."""
    y = frame.top + 6
    return [
        f'<path class="chart-break" data-index="{index}" d="M{_f(x - 1)} {_f(y + 3)} '
        f'L{_f(x + width / 2)} {_f(y - 3)} L{_f(x + width + 1)} {_f(y + 3)}" fill="none" '
        f'stroke="#fff" stroke-width="3"/>',
        f'<text class="chart-text chart-clip-label" data-index="{index}" '
        f'x="{_f(x + width / 2)}" y="{frame.top - 4}" text-anchor="middle">'
        f"{escape('↑ ' + text)}</text>",
    ]


def _empty(title: str, message: str = "No data") -> str:
    frame = _Frame(1, 0, right_axis=False)
    parts = _open(frame, title)
    parts.append(
        f'<text class="chart-text chart-empty" x="{WIDTH // 2}" y="{frame.height // 2}" '
        f'text-anchor="middle">{escape(message)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _check_lengths(labels: Sequence[str], series: Mapping[str, Sequence]) -> None:
    for name, values in series.items():
        if len(values) != len(labels):
            raise ValueError(f"series {name!r} has {len(values)} values for {len(labels)} labels")


# --- Charts -----------------------------------------------------------------------------------


def stacked_bars(
    labels: Sequence[str],
    series: Mapping[str, Sequence[Number | None]],
    *,
    title: str,
    value_format: Formatter = format_count,
    axis_format: Formatter | None = None,
    line: tuple[str, Sequence[Number | None]] | None = None,
    line_format: Formatter = format_percent,
    line_axis_format: Formatter = percent_axis,
    links: Sequence[str] | None = None,
    clip: bool = False,
) -> str:
    """Return bars stacked per label, one colour per series (in order), with a legend.

    ``value_format`` writes values in titles (with their unit), ``axis_format`` the ticks
    (default: ``value_format``). ``line``, a (name, values) pair, is drawn over the bars against
    its own axis on the right (e.g. the error rate over the calls). Negative values are drawn as
    zero. ``clip`` lets a few days far above the rest go off the scale (chart_scales.py).
    """
    _check_lengths(labels, series)
    if line is not None:
        _check_lengths(labels, {line[0]: line[1]})
    if not labels:
        return _empty(title)
    axis_format = axis_format or value_format
    names = list(series)
    legend_entries = [(name, _color(i), "box") for i, name in enumerate(names)]
    if line is not None:
        legend_entries.append((line[0], OVERLAY_COLOR, "line"))
    legend, legend_rows = _legend(legend_entries)
    columns = [
        [max(_num(series[name][i]) or 0.0, 0.0) for name in names] for i in range(len(labels))
    ]
    ticks, clipped = scale_ticks([sum(column) for column in columns], clip=clip)
    frame = _Frame(len(labels), legend_rows, right_axis=line is not None, clipped=clipped)
    top_value = ticks[-1]
    bar_width = max(frame.band * BAR_FILL, 1.0)

    summaries = []
    for index, (label, column) in enumerate(zip(labels, columns, strict=True)):
        summary = [f"{label}: {value_format(sum(column))}"]
        summary += [f"{name}: {value_format(v)}" for name, v in zip(names, column, strict=True)]
        if line is not None:
            summary.append(f"{line[0]}: {line_format(_num(line[1][index]))}")
        summaries.append(summary)

    parts = _open(frame, title, top_value)
    parts += legend
    parts += _y_axis(frame, ticks, axis_format)
    parts += _bands(frame, labels, summaries, links)
    for index, (label, column) in enumerate(zip(labels, columns, strict=True)):
        x = frame.x_center(index) - bar_width / 2
        base = 0.0
        for series_index, (name, value) in enumerate(zip(names, column, strict=True)):
            if value <= 0:
                continue
            y_top = frame.y(base + value, top_value)
            height = frame.y(base, top_value) - y_top
            parts.append(
                f'<rect class="chart-bar" data-series="{series_index}" data-index="{index}" '
                f'data-value="{value!r}" x="{_f(x)}" y="{_f(y_top)}" width="{_f(bar_width)}" '
                f'height="{_f(height)}" fill="{_color(series_index)}"><title>'
                f"{escape(f'{label} · {name}: {value_format(value)}')}</title></rect>"
            )
            base += value
        if base > top_value:
            parts += _clip_mark(frame, index, x, bar_width, axis_format(base))
    if line is not None:
        name, values = line
        line_ticks = nice_ticks(max((_num(v) or 0.0 for v in values), default=0.0))
        parts += _y_axis(frame, line_ticks, line_axis_format, right=True)
        parts += _polyline(
            frame, labels, len(names), name, values, line_ticks[-1], OVERLAY_COLOR, line_format
        )
    parts += _x_axis(frame, labels)
    parts.append("</svg>")
    return "".join(parts)


def lines(
    labels: Sequence[str],
    series: Mapping[str, Sequence[Number | None]],
    *,
    title: str,
    value_format: Formatter = format_count,
    axis_format: Formatter | None = None,
    links: Sequence[str] | None = None,
    clip: bool = False,
) -> str:
    """Return one line per series (colours in order) with a dot per value and a legend.

    A ``None`` value is a gap: the line stops before it and starts again after it.
    """
    _check_lengths(labels, series)
    if not labels:
        return _empty(title)
    axis_format = axis_format or value_format
    legend, legend_rows = _legend([(name, _color(i), "line") for i, name in enumerate(series)])
    values = [_num(v) for column in series.values() for v in column]
    ticks, clipped = scale_ticks(values, clip=clip)
    frame = _Frame(len(labels), legend_rows, right_axis=False, clipped=clipped)
    summaries = [
        [label, *(f"{name}: {value_format(_num(column[i]))}" for name, column in series.items())]
        for i, label in enumerate(labels)
    ]

    parts = _open(frame, title, ticks[-1])
    parts += legend
    parts += _y_axis(frame, ticks, axis_format)
    parts += _bands(frame, labels, summaries, links)
    for index, (name, column) in enumerate(series.items()):
        parts += _polyline(
            frame, labels, index, name, column, ticks[-1], _color(index), value_format
        )
    if clipped:
        for index in range(len(labels)):
            highest = max((_num(c[index]) or 0.0 for c in series.values()), default=0.0)
            if highest > ticks[-1]:
                x = frame.x_center(index) - 6
                parts += _clip_mark(frame, index, x, 12, axis_format(highest))
    parts += _x_axis(frame, labels)
    parts.append("</svg>")
    return "".join(parts)


def _polyline(
    frame: _Frame,
    labels: Sequence[str],
    series_index: int,
    name: str,
    values: Sequence[Number | None],
    top_value: float,
    color: str,
    fmt: Formatter,
) -> list[str]:
    """Return a path through the values (one subpath per run without None) and their dots."""
    commands: list[str] = []
    dots: list[str] = []
    pen_down = False
    for index, raw in enumerate(values):
        value = _num(raw)
        if value is None:
            pen_down = False
            continue
        x, y = _f(frame.x_center(index)), _f(frame.y(max(value, 0.0), top_value))
        commands.append(f"{'L' if pen_down else 'M'}{x} {y}")
        pen_down = True
        clipped = " chart-clipped" if value > top_value else ""
        dots.append(
            f'<circle class="chart-dot{clipped}" data-series="{series_index}" '
            f'data-index="{index}" cx="{x}" cy="{y}" r="3" fill="{color}"><title>'
            f"{escape(f'{labels[index]} · {name}: {fmt(value)}')}</title></circle>"
        )
    parts = []
    if commands:
        parts.append(
            f'<path class="chart-line" data-series="{series_index}" d="{" ".join(commands)}" '
            f'fill="none" stroke="{color}" stroke-width="2" stroke-linejoin="round" '
            f'stroke-linecap="round"><title>{escape(name)}</title></path>'
        )
    return parts + dots
