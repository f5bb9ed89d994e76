"""Server-rendered SVG charts for the AI usage dashboard (number formats: core.formatting). Pure.

Each function returns one ``<svg>`` string: no script or style (the site's CSP holds; colours are
presentation attributes), every text escaped, ``role="img"`` with a ``<title>`` per bar or point.
Values are plotted from zero; ``None`` is a gap (lines) or nothing (bars).
"""

import math
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from html import escape

# format_compact: the dashboard also passes it to the charts as charts.format_compact.
from core.formatting import format_compact, format_count, format_percent  # noqa: F401

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
MAX_X_LABELS = 6
BAR_FILL = 0.72  # share of a day's band the bar takes

type Number = float | int | Decimal
type Formatter = Callable[[Number | None], str]


# --- Scales -------------------------------------------------------------------------------------


def nice_ticks(maximum: float, count: int = 4) -> list[float]:
    """Return evenly spaced round ticks from 0 up to at least ``maximum`` (about ``count`` steps).

    Steps are 1, 2, 2.5 or 5 times a power of ten. A zero (or missing) maximum gives 0..1.
    """
    if not maximum or maximum <= 0 or not math.isfinite(maximum):
        maximum = 1.0
    raw = maximum / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = 10 * magnitude
    for multiple in (1, 2, 2.5, 5):
        if multiple * magnitude >= raw:
            step = multiple * magnitude
            break
    steps = math.ceil(round(maximum / step, 9))
    return [step * i for i in range(steps + 1)]


def _num(value: Number | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class _Frame:
    """The geometry of one chart: a plot area with one band per label, and the legend above."""

    def __init__(self, n: int, legend_rows: int, *, right_axis: bool):
        self.n = n
        self.left = MARGIN_LEFT
        self.right = WIDTH - (MARGIN_RIGHT_AXIS if right_axis else MARGIN_RIGHT)
        self.top = 8 + legend_rows * LEGEND_ROW + (6 if legend_rows else 0)
        self.bottom = self.top + PLOT_HEIGHT
        self.height = self.bottom + MARGIN_BOTTOM
        self.band = (self.right - self.left) / max(n, 1)

    def x_center(self, index: int) -> float:
        return self.left + (index + 0.5) * self.band

    def y(self, value: float, top_value: float) -> float:
        return self.bottom - (value / top_value) * PLOT_HEIGHT


def _f(value: float) -> str:
    """A coordinate, short: 12.0 -> ``12``, 12.3456 -> ``12.35``."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _legend(entries: Sequence[tuple[str, str, str]]) -> tuple[list[str], int]:
    """Lay out (name, colour, kind) entries in rows; kind is ``box`` or ``line``."""
    parts: list[str] = []
    x: float = MARGIN_LEFT
    row = 0
    for name, color, kind in entries:
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
            f'<g class="chart-legend-item">{swatch}'
            f'<text class="chart-text" x="{_f(x + 16)}" y="{y + 10}">{escape(name)}</text></g>'
        )
        x += width
    return parts, (row + 1 if entries else 0)


def _open(frame: _Frame, title: str) -> list[str]:
    t = escape(title)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} '
        f'{frame.height}" role="img" aria-label="{t}" font-size="{FONT_SIZE}" fill="#333">',
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
        text = "0" if tick == 0 else fmt(tick)  # a bare zero reads better than $0.0000
        parts.append(
            f'<text class="chart-text chart-tick" x="{_f(x)}" y="{y}" dy="0.32em" '
            f'text-anchor="{anchor}">{escape(text)}</text>'
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
    line: tuple[str, Sequence[Number | None]] | None = None,
    line_format: Formatter = format_percent,
) -> str:
    """Return bars stacked per label, one colour per series (in order), with a legend.

    ``line``, a (name, values) pair, is drawn over the bars against its own axis on the right
    (e.g. the error rate over the calls). Negative values are drawn as zero.
    """
    _check_lengths(labels, series)
    if line is not None:
        _check_lengths(labels, {line[0]: line[1]})
    if not labels:
        return _empty(title)
    names = list(series)
    legend_entries = [(name, _color(i), "box") for i, name in enumerate(names)]
    if line is not None:
        legend_entries.append((line[0], OVERLAY_COLOR, "line"))
    legend, legend_rows = _legend(legend_entries)
    frame = _Frame(len(labels), legend_rows, right_axis=line is not None)

    columns = [
        [max(_num(series[name][i]) or 0.0, 0.0) for name in names] for i in range(len(labels))
    ]
    ticks = nice_ticks(max((sum(column) for column in columns), default=0.0))
    top_value = ticks[-1]
    bar_width = max(frame.band * BAR_FILL, 1.0)

    parts = _open(frame, title)
    parts += legend
    parts += _y_axis(frame, ticks, value_format)
    for index, (label, column) in enumerate(zip(labels, columns, strict=True)):
        summary = [f"{label}: {value_format(sum(column))}"]
        summary += [f"{name}: {value_format(v)}" for name, v in zip(names, column, strict=True)]
        if line is not None:
            summary.append(f"{line[0]}: {line_format(_num(line[1][index]))}")
        band_x = frame.left + index * frame.band
        tooltip = escape("\n".join(summary))
        parts.append(
            f'<rect class="chart-band" x="{_f(band_x)}" y="{frame.top}" width="{_f(frame.band)}" '
            f'height="{PLOT_HEIGHT}" fill="transparent"><title>{tooltip}</title></rect>'
        )
        x = frame.x_center(index) - bar_width / 2
        base = 0.0
        for series_index, (name, value) in enumerate(zip(names, column, strict=True)):
            if value <= 0:
                continue
            y_top = frame.y(base + value, top_value)
            height = frame.y(base, top_value) - y_top
            parts.append(
                f'<rect class="chart-bar" data-series="{series_index}" x="{_f(x)}" '
                f'y="{_f(y_top)}" width="{_f(bar_width)}" height="{_f(height)}" '
                f'fill="{_color(series_index)}"><title>'
                f"{escape(f'{label} · {name}: {value_format(value)}')}</title></rect>"
            )
            base += value
    if line is not None:
        name, values = line
        line_ticks = nice_ticks(max((_num(v) or 0.0 for v in values), default=0.0))
        parts += _y_axis(frame, line_ticks, line_format, right=True)
        parts += _polyline(frame, labels, name, values, line_ticks[-1], OVERLAY_COLOR, line_format)
    parts += _x_axis(frame, labels)
    parts.append("</svg>")
    return "".join(parts)


def lines(
    labels: Sequence[str],
    series: Mapping[str, Sequence[Number | None]],
    *,
    title: str,
    value_format: Formatter = format_count,
) -> str:
    """Return one line per series (colours in order) with a dot per value and a legend.

    A ``None`` value is a gap: the line stops before it and starts again after it.
    """
    _check_lengths(labels, series)
    if not labels:
        return _empty(title)
    legend, legend_rows = _legend([(name, _color(i), "line") for i, name in enumerate(series)])
    frame = _Frame(len(labels), legend_rows, right_axis=False)
    values = [_num(v) for column in series.values() for v in column]
    ticks = nice_ticks(max((v for v in values if v is not None), default=0.0))

    parts = _open(frame, title)
    parts += legend
    parts += _y_axis(frame, ticks, value_format)
    for index, (name, column) in enumerate(series.items()):
        parts += _polyline(frame, labels, name, column, ticks[-1], _color(index), value_format)
    parts += _x_axis(frame, labels)
    parts.append("</svg>")
    return "".join(parts)


def _polyline(
    frame: _Frame,
    labels: Sequence[str],
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
        dots.append(
            f'<circle class="chart-dot" cx="{x}" cy="{y}" r="3" fill="{color}"><title>'
            f"{escape(f'{labels[index]} · {name}: {fmt(value)}')}</title></circle>"
        )
    parts = []
    if commands:
        parts.append(
            f'<path class="chart-line" d="{" ".join(commands)}" fill="none" stroke="{color}" '
            f'stroke-width="2" stroke-linejoin="round" stroke-linecap="round">'
            f"<title>{escape(name)}</title></path>"
        )
    return parts + dots
