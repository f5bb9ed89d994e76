"""Presenters of ``selectors.compare`` for the comparison page: formatted rows, no queries."""

from functools import partial

from django.urls import reverse
from django.utils.safestring import mark_safe

from analytics import charts
from core.formatting import format_count, format_ms, format_percent, format_usd

# How each metric of ``selectors.compare`` reads: its unit, and which way is better.
METRICS = {
    "satisfaction": ("rate", "higher", "rated"),
    "error rate": ("rate", "lower", "calls"),
    "latency (ms)": ("ms", "lower", "latency"),
    "time to first token (ms)": ("ms", "lower", "ttft"),
    "output tokens per reply": ("number", None, "output_tokens"),
    "cost per call (USD)": ("usd", "lower", "cost"),
}


def format_value(kind: str, value) -> str:
    if value is None:
        return "—"
    if kind == "rate":
        return format_percent(value)
    if kind == "ms":
        return format_ms(value)
    if kind == "usd":
        return format_usd(value)
    return f"{float(value):,.1f}"


def format_diff(kind: str, value) -> str:
    if value is None:
        return "—"
    if kind == "rate":
        return f"{value * 100:+.1f} pts"
    if kind == "ms":
        return f"{value:+,.0f} ms"
    if kind == "usd":
        return format_usd(value, signed=True)
    return f"{value:+,.1f}"


def format_relative(value) -> str:
    return "—" if value is None else f"{value:+.1%}"


def format_p(value) -> str:
    if value is None:
        return "—"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _interval(interval) -> str:
    if interval is None:
        return ""
    low, high = interval
    return f"{low * 100:.1f}\N{EN DASH}{high * 100:.1f}%"


def variant_role(is_control: bool) -> str:
    """How a variant's column is labelled under its key."""
    return "control group" if is_control else "treatment"


def variant_row(v, version_id: int | None) -> dict:
    return {
        "key": v.key,
        "is_control": v.is_control,
        "role": variant_role(v.is_control),
        "weight": v.weight,
        "model": v.model,
        "prompt_version": v.prompt_version,
        "prompt_version_url": (
            reverse("admin:experiments_promptversion_change", args=[version_id])
            if version_id
            else ""
        ),
        "users": format_count(v.users),
        "conversations": format_count(v.conversations),
        "calls": format_count(v.calls),
        "satisfaction": format_percent(v.satisfaction),
        "satisfaction_interval": _interval(v.satisfaction_interval),
        "rated": format_count(v.rated),
        "rating_rate": format_percent(v.rating_rate),
        "error_rate": format_percent(v.error_rate),
        "avg_latency": format_ms(v.latency.mean),
        "p95_latency": format_ms(v.p95_latency_ms),
        "avg_ttft": format_ms(v.ttft.mean),
        "output_tokens": format_value("number", v.output_tokens.mean),
        "cost_per_call": format_usd(v.cost.mean),
        "cost_per_user": format_usd(v.cost_per_user),
        "cost": format_usd(v.cost_usd),
    }


def _sample_size(v, source: str) -> int:
    value = getattr(v, source)
    return value if isinstance(value, int) else value.n


def difference_tables(comparison) -> list[dict]:
    by_key = {v.key: v for v in comparison.variants}
    control = next((v for v in comparison.variants if v.is_control), None)
    tables = []
    for key, differences in comparison.differences.items():
        rows = []
        for d in differences:
            kind, better, source = METRICS.get(d.metric, ("number", None, None))
            row = {
                "metric": d.metric,
                "control": format_value(kind, d.control),
                "treatment": format_value(kind, d.treatment),
                "diff": format_diff(kind, d.diff),
                "relative": format_relative(d.relative),
                "p_value": format_p(d.p_value),
                "enough_data": d.enough_data,
                "significant": d.significant,
                "direction": "",
            }
            if not d.enough_data:
                note = f"not enough data (needs {comparison.min_sample} per group"
                if source and control is not None:
                    has = min(_sample_size(control, source), _sample_size(by_key[key], source))
                    note += f", has {has}"
                row["note"] = note + ")"
            elif d.significant and better and d.diff:
                improved = (d.diff > 0) == (better == "higher")
                row["direction"] = "better" if improved else "worse"
            rows.append(row)
        tables.append({"key": key, "control": control.key if control else "", "rows": rows})
    return tables


def srm_summary(comparison) -> dict | None:
    srm = comparison.srm
    if srm is None:
        return None
    p_value = format_p(srm.p_value)
    total = sum(v.users for v in comparison.variants)
    weights = sum(v.weight for v in comparison.variants)
    return {
        "mismatch": srm.mismatch,
        "chi2": f"{srm.chi2:.2f}",
        "df": srm.df,
        "p": f"p {p_value}" if p_value.startswith("<") else f"p = {p_value}",
        "groups": [
            {
                "key": v.key,
                "observed": format_count(v.users),
                "expected": format_count(total * v.weight / weights),
                "share": format_percent(v.users / total),
                "expected_share": format_percent(v.weight / weights),
            }
            for v in comparison.variants
        ],
    }


# The daily charts: (title, attribute of selectors.DailyMetrics, value format).
DAILY_CHARTS = (
    ("Satisfaction per day (thumbs up of the replies rated that day)", "satisfaction", "rate"),
    ("Error rate per day", "error_rate", "rate"),
    ("Average latency per day (successful calls)", "latency_ms", "ms"),
    ("Cost per call per day", "cost_per_call", "usd"),
)


def daily_charts(daily, variants) -> list[dict]:
    """Return one server-rendered SVG line chart per metric, a line per variant (control first)."""
    if not daily.days:
        return []
    labels = [f"{d:%b} {d.day}" for d in daily.days]
    order = sorted(variants, key=lambda v: not v.is_control)
    result = []
    for title, attribute, kind in DAILY_CHARTS:
        values = getattr(daily, attribute)
        series = {
            f"{v.key} ({variant_role(v.is_control)})": values.get(v.key, [None] * len(labels))
            for v in order
        }
        svg = charts.lines(labels, series, title=title, value_format=partial(format_value, kind))
        # charts.lines escapes every text it writes.
        result.append({"metric": attribute, "title": title, "svg": mark_safe(svg)})  # noqa: S308
    return result
