"""Number formats of the staff pages (dashboard, reports, experiment comparison). Pure."""

import math
from decimal import Decimal

Number = float | int | Decimal


def format_money(value: Number | None) -> str:
    """Return ``$0.1234`` under a dollar and ``$1,234.57`` from a dollar on; ``—`` for None."""
    if value is None:
        return "—"
    sign = "-" if value < 0 else ""
    amount = -value if value < 0 else value
    return f"{sign}${amount:,.4f}" if amount < 1 else f"{sign}${amount:,.2f}"


def format_percent(value: Number | None, digits: int = 1) -> str:
    """Return a ratio as a percentage: 0.0456 -> ``4.6%``; ``—`` for None."""
    if value is None:
        return "—"
    return f"{float(value) * 100:.{digits}f}%"


def format_change(value: Number | None) -> str:
    """Return a relative change with its sign: 0.25 -> ``+25%``; ``n/a`` for None."""
    if value is None:
        return "n/a"
    return f"{float(value):+.0%}"


def format_ms(value: Number | None) -> str:
    """Return a duration in milliseconds, in seconds from 10 s on; ``—`` for None."""
    if value is None:
        return "—"
    value = float(value)
    return f"{value:,.0f} ms" if value < 10_000 else f"{value / 1000:,.1f} s"


def format_count(value: Number | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}"


def format_compact(value: Number | None) -> str:
    """Return a short count for an axis: 1234 -> ``1.2k``, 2500000 -> ``2.5M``."""
    if value is None:
        return "—"
    value = float(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def format_usd(value: Number | None, *, signed: bool = False) -> str:
    """Dollars, with enough digits for a per-call cost: $0.000123, $0.0456, $12.30."""
    if value is None:
        return "—"
    value = float(value)
    sign = ("+" if value > 0 else "-" if value < 0 else "") if signed else "-" * (value < 0)
    amount = abs(value)
    if amount == 0:
        return "$0"
    if amount >= 1:
        return f"{sign}${amount:,.2f}"
    digits = max(4, 2 - math.floor(math.log10(amount)))
    return f"{sign}${amount:.{digits}f}"


def _trimmed(value: float, digits: int) -> str:
    """Return ``value`` with at most ``digits`` decimals and no trailing zeros: 95.0 -> ``95``."""
    text = f"{value:,.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_rate(value: Number | None) -> str:
    """Return a ratio as a percentage with up to two decimals: 0.717949 -> ``71.79%``,
    0.95 -> ``95%``; ``—`` for None. (For thresholds and the values compared with them.)"""
    if value is None:
        return "—"
    return f"{_trimmed(float(value) * 100, 2)}%"


def format_seconds(value: Number | None) -> str:
    """Return a duration given in seconds: ``850 ms`` under a second, ``2.35 s`` from one on."""
    if value is None:
        return "—"
    seconds = float(value)
    if abs(seconds) < 1:
        return f"{seconds * 1000:,.0f} ms"
    return f"{_trimmed(seconds, 2)} s"


def format_ratio(value: Number | None) -> str:
    """Return a multiple with a multiplication sign: 2.5 -> ``2.5x``; ``—`` for None."""
    if value is None:
        return "—"
    return f"{_trimmed(float(value), 2)}\N{MULTIPLICATION SIGN}"


def format_number(value: Number | None) -> str:
    """Return a plain number with up to four decimals: 0.717949 -> ``0.7179``; ``—`` for None."""
    if value is None:
        return "—"
    return _trimmed(float(value), 4)
