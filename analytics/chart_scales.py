"""Scales and axis labels of the dashboard's SVG charts (analytics/charts.py). Pure.

A chart's vertical scale starts at zero and ends on a round tick. When one or a few days dwarf
the rest (the one costly day of a month), the scale is *clipped*: it ends just above the other
days, and the days above it are drawn to the top with a break mark and their value written on
them, so that one day does not flatten the rest.
"""

import math
from collections.abc import Iterable
from decimal import Decimal

from core.formatting import format_compact, format_ms

type Number = float | int | Decimal

# A value is off the scale when it is more than CLIP_RATIO times the next value below it...
CLIP_RATIO = 3.0
# ...and at most one value in CLIP_SHARE (of the positive values) is clipped, with at least
# CLIP_MIN_VALUES positive values in the chart (with fewer, every bar is worth seeing whole).
CLIP_SHARE = 8
CLIP_MIN_VALUES = 5


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


def clip_limit(values: Iterable[float | None]) -> float | None:
    """Return the highest value the scale must show whole when a few values dwarf the rest.

    ``None`` when nothing needs clipping. The cut is put at the largest jump (a ratio above
    ``CLIP_RATIO``) among the top ``1/CLIP_SHARE`` of the values.
    """
    positive = sorted((v for v in values if v is not None and v > 0), reverse=True)
    if len(positive) < CLIP_MIN_VALUES:
        return None
    best, best_ratio = None, CLIP_RATIO
    for k in range(1, max(1, len(positive) // CLIP_SHARE) + 1):
        ratio = positive[k - 1] / positive[k]
        if ratio > best_ratio:
            best, best_ratio = positive[k], ratio
    return best


def scale_ticks(values: Iterable[float | None], *, clip: bool) -> tuple[list[float], bool]:
    """Return the ticks of a scale for ``values`` and whether some values are above it."""
    values = list(values)
    highest = max((v for v in values if v is not None), default=0.0)
    limit = clip_limit(values) if clip else None
    if limit is None:
        return nice_ticks(highest), False
    ticks = nice_ticks(limit * 1.1)
    return ticks, highest > ticks[-1]


# --- Axis labels: short, and with their unit, zero included ($0, 0 ms, 0%) ----------------------


def money_axis(value: Number | None) -> str:
    """``$0``, ``$0.0025``, ``$0.50``, ``$2``, ``$2.50``, ``$1.2k``."""
    if value is None:
        return "—"
    amount = float(value)
    if amount == 0:
        return "$0"
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if amount >= 1000:
        return f"{sign}${format_compact(amount)}"
    if amount >= 1 and amount == int(amount):
        return f"{sign}${amount:,.0f}"
    if amount >= 1:
        return f"{sign}${amount:,.2f}"
    text = f"{amount:.6f}".rstrip("0")
    decimals = max(2, len(text.split(".")[1]))
    return f"{sign}${amount:.{decimals}f}"


def percent_axis(value: Number | None) -> str:
    """``0%``, ``5%``, ``2.5%``."""
    if value is None:
        return "—"
    percent = round(float(value) * 100, 6)
    return f"{percent:g}%"


def ms_axis(value: Number | None) -> str:
    """``0 ms``, ``500 ms``, ``1,500 ms``, ``10.0 s``."""
    return format_ms(value)


def count_axis(value: Number | None) -> str:
    """``0``, ``250``, ``2.5k``."""
    return format_compact(value)
