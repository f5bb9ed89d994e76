"""Reads that feed the AI usage dashboard, the daily cost report and the metrics: from rollups only.

Days are reporting-zone days (``REPORTING_TIME_ZONE``); every number here comes from the daily
rollups (``CallRollup`` with period ``day``) and ``UserDailyUsage``, never from a scan of raw calls,
so a 30-day view costs the same at 10,000 or 10,000,000 calls.
"""

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Sum

from .histogram import N_BUCKETS, percentile
from .models import CallRollup, UserDailyUsage
from .timezones import day_bounds

ZERO = Decimal(0)


def _add_into(total: list[int], counts) -> None:
    for index, count in enumerate(counts or ()):
        total[index] += count


@dataclass
class Totals:
    """Sums over rollup rows, with the derived rates and percentiles."""

    calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = ZERO
    unpriced_calls: int = 0
    latency_ms_sum: int = 0
    ttft_ms_sum: int = 0
    ttft_count: int = 0
    latency_histogram: list[int] = field(default_factory=lambda: [0] * N_BUCKETS)
    ttft_histogram: list[int] = field(default_factory=lambda: [0] * N_BUCKETS)

    def add(self, row: CallRollup) -> None:
        self.calls += row.calls
        self.errors += row.errors
        self.input_tokens += row.input_tokens
        self.cached_input_tokens += row.cached_input_tokens
        self.output_tokens += row.output_tokens
        self.cost_usd += row.cost_usd
        self.unpriced_calls += row.unpriced_calls
        self.latency_ms_sum += row.latency_ms_sum
        self.ttft_ms_sum += row.ttft_ms_sum
        self.ttft_count += row.ttft_count
        _add_into(self.latency_histogram, row.latency_histogram)
        _add_into(self.ttft_histogram, row.ttft_histogram)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def success_rate(self) -> float | None:
        return (self.calls - self.errors) / self.calls if self.calls else None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.calls if self.calls else None

    @property
    def avg_latency_ms(self) -> float | None:
        return self.latency_ms_sum / self.calls if self.calls else None

    @property
    def p50_latency_ms(self) -> float | None:
        return percentile(self.latency_histogram, 0.50)

    @property
    def p95_latency_ms(self) -> float | None:
        return percentile(self.latency_histogram, 0.95)

    @property
    def avg_ttft_ms(self) -> float | None:
        return self.ttft_ms_sum / self.ttft_count if self.ttft_count else None

    @property
    def p95_ttft_ms(self) -> float | None:
        return percentile(self.ttft_histogram, 0.95)

    @property
    def cost_per_call(self) -> Decimal | None:
        """Average cost of the priced calls (unpriced ones would pull it toward zero)."""
        priced = self.calls - self.unpriced_calls
        return self.cost_usd / priced if priced else None


def _daily_rows(first_day: date, last_day: date):
    start, _ = day_bounds(first_day)
    _, end = day_bounds(last_day)
    return CallRollup.objects.filter(
        period=CallRollup.Period.DAY, bucket_start__gte=start, bucket_start__lt=end
    )


def totals(first_day: date, last_day: date, **filters) -> Totals:
    result = Totals()
    for row in _daily_rows(first_day, last_day).filter(**filters):
        result.add(row)
    return result


def by_day(first_day: date, last_day: date) -> list[tuple[date, Totals, dict[str, Decimal]]]:
    """Return, for each day of the range, its totals and its cost per model."""
    days = [first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1)]
    per_day: dict[date, tuple[Totals, defaultdict[str, Decimal]]] = {
        d: (Totals(), defaultdict(lambda: ZERO)) for d in days
    }
    for row in _daily_rows(first_day, last_day):
        day = _row_day(row)
        if day in per_day:
            per_day[day][0].add(row)
            per_day[day][1][row.model] += row.cost_usd
    return [(d, per_day[d][0], dict(per_day[d][1])) for d in days]


def _row_day(row: CallRollup) -> date:
    from .timezones import local_day

    return local_day(row.bucket_start)


def breakdown(first_day: date, last_day: date, dimension: str) -> list[tuple[str, Totals]]:
    """Return totals per value of ``dimension`` (model, task_type, variant), costliest first."""
    if dimension not in ("model", "task_type", "variant", "status"):
        raise ValueError(f"unknown dimension {dimension!r}")
    groups: dict[str, Totals] = defaultdict(Totals)
    for row in _daily_rows(first_day, last_day):
        groups[getattr(row, dimension)].add(row)
    return _sorted_groups(groups)


DIMENSIONS = ("model", "task_type", "variant")


@dataclass
class RangeSummary:
    """Everything the dashboard shows about a range, from one read of its daily rollups."""

    totals: Totals
    days: list[tuple[date, Totals, dict[str, Decimal]]]
    breakdowns: dict[str, list[tuple[str, Totals]]]

    def day(self, day: date) -> Totals | None:
        return next((t for d, t, _ in self.days if d == day), None)


def range_summary(first_day: date, last_day: date) -> RangeSummary:
    """Return the range's totals, per-day totals and breakdowns in one pass over its rollups."""
    days = [first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1)]
    per_day: dict[date, tuple[Totals, defaultdict[str, Decimal]]] = {
        d: (Totals(), defaultdict(lambda: ZERO)) for d in days
    }
    total = Totals()
    groups: dict[str, dict[str, Totals]] = {d: defaultdict(Totals) for d in DIMENSIONS}
    for row in _daily_rows(first_day, last_day):
        total.add(row)
        day = _row_day(row)
        if day in per_day:
            per_day[day][0].add(row)
            per_day[day][1][row.model] += row.cost_usd
        for dimension in DIMENSIONS:
            groups[dimension][getattr(row, dimension)].add(row)
    return RangeSummary(
        totals=total,
        days=[(d, per_day[d][0], dict(per_day[d][1])) for d in days],
        breakdowns={d: _sorted_groups(g) for d, g in groups.items()},
    )


def _sorted_groups(groups: dict[str, Totals]) -> list[tuple[str, Totals]]:
    return sorted(groups.items(), key=lambda item: (-item[1].cost_usd, -item[1].calls, item[0]))


@dataclass(frozen=True)
class UserUsage:
    user_id: int
    username: str
    calls: int
    tokens: int
    cost_usd: Decimal
    unpriced_calls: int = 0


def top_users(first_day: date, last_day: date, *, limit: int = 20) -> list[UserUsage]:
    query = (
        UserDailyUsage.objects.filter(day__gte=first_day, day__lte=last_day)
        .values("user_id")
        .annotate(
            calls=Sum("calls"),
            input=Sum("input_tokens"),
            output=Sum("output_tokens"),
            cost=Sum("cost_usd"),
            unpriced=Sum("unpriced_calls"),
        )
        .order_by("-cost", "-calls", "user_id")[:limit]
    )
    rows = list(query)
    names = dict(
        get_user_model()
        .objects.filter(pk__in=[r["user_id"] for r in rows])
        .values_list("pk", "username")
    )
    return [
        UserUsage(
            user_id=r["user_id"],
            username=names.get(r["user_id"], f"user {r['user_id']}"),
            calls=r["calls"],
            tokens=(r["input"] or 0) + (r["output"] or 0),
            cost_usd=r["cost"] or ZERO,
            unpriced_calls=r["unpriced"] or 0,
        )
        for r in rows
    ]


# --- The daily cost report -------------------------------------------------------------------

TRAILING_DAYS = 7


@dataclass(frozen=True)
class ReportLine:
    """One row of the report: the day's value and the trailing 7-day daily average."""

    key: str
    calls: int
    tokens: int
    cost_usd: Decimal
    avg_calls: float
    avg_tokens: float
    avg_cost_usd: Decimal
    unpriced_calls: int = 0

    @property
    def cost_change(self) -> float | None:
        """Relative change of the cost against the trailing average (None without history)."""
        if not self.avg_cost_usd:
            return None
        return float((self.cost_usd - self.avg_cost_usd) / self.avg_cost_usd)


@dataclass(frozen=True)
class DailyReport:
    day: date
    total: ReportLine
    by_model: list[ReportLine]
    by_task_type: list[ReportLine]
    by_variant: list[ReportLine]
    by_user: list[ReportLine]
    history_days: int  # days of the trailing window that had any call


def _lines(day_groups: dict, trailing_groups: dict, days: int) -> list[ReportLine]:
    keys = set(day_groups) | set(trailing_groups)
    lines = []
    for key in keys:
        today = day_groups.get(key, (0, 0, ZERO, 0))
        past = trailing_groups.get(key, (0, 0, ZERO, 0))
        lines.append(
            ReportLine(
                key=key,
                calls=today[0],
                tokens=today[1],
                cost_usd=today[2],
                unpriced_calls=today[3],
                avg_calls=past[0] / days,
                avg_tokens=past[1] / days,
                avg_cost_usd=(past[2] / days).quantize(Decimal("0.000001")),
            )
        )
    return sorted(lines, key=lambda line: (-line.cost_usd, -line.calls, line.key))


def _group(rows, attribute: str | None) -> dict:
    groups: dict[str, tuple] = {}
    for row in rows:
        key = getattr(row, attribute) if attribute else "total"
        calls, tokens, cost, unpriced = groups.get(key, (0, 0, ZERO, 0))
        groups[key] = (
            calls + row.calls,
            tokens + row.input_tokens + row.output_tokens,
            cost + row.cost_usd,
            unpriced + row.unpriced_calls,
        )
    return groups


def daily_report(day: date, *, top: int = 20) -> DailyReport:
    """Return the cost report of ``day`` with each line against the trailing 7-day average."""
    first_trailing = day - timedelta(days=TRAILING_DAYS)
    rows = list(_daily_rows(first_trailing, day))
    day_start, _ = day_bounds(day)
    on_day = [r for r in rows if r.bucket_start == day_start]
    trailing = [r for r in rows if r.bucket_start < day_start]
    history_days = len({r.bucket_start for r in trailing})

    def lines(attribute):
        return _lines(_group(on_day, attribute), _group(trailing, attribute), TRAILING_DAYS)

    total = lines(None)
    users_today = {u.user_id: u for u in top_users(day, day, limit=top)}
    user_trailing = {
        r["user_id"]: r
        for r in UserDailyUsage.objects.filter(
            day__gte=first_trailing, day__lt=day, user_id__in=list(users_today)
        )
        .values("user_id")
        .annotate(calls=Sum("calls"), input=Sum("input_tokens"), output=Sum("output_tokens"))
        .annotate(cost=Sum("cost_usd"))
    }
    by_user = []
    for user_id, usage in users_today.items():
        past: Mapping[str, Any] = user_trailing.get(user_id, {})
        by_user.append(
            ReportLine(
                key=usage.username,
                calls=usage.calls,
                tokens=usage.tokens,
                cost_usd=usage.cost_usd,
                unpriced_calls=usage.unpriced_calls,
                avg_calls=(past.get("calls") or 0) / TRAILING_DAYS,
                avg_tokens=((past.get("input") or 0) + (past.get("output") or 0)) / TRAILING_DAYS,
                avg_cost_usd=((past.get("cost") or ZERO) / TRAILING_DAYS).quantize(
                    Decimal("0.000001")
                ),
            )
        )
    return DailyReport(
        day=day,
        total=total[0] if total else ReportLine("total", 0, 0, ZERO, 0.0, 0.0, ZERO),
        by_model=lines("model"),
        by_task_type=lines("task_type"),
        by_variant=lines("variant"),
        by_user=by_user,
        history_days=history_days,
    )


def rollup_values(dimension: str) -> list[str]:
    """Return the distinct values of ``dimension`` in the daily rollups (cheap filter choices)."""
    return list(
        CallRollup.objects.filter(period=CallRollup.Period.DAY)
        .order_by(dimension)
        .values_list(dimension, flat=True)
        .distinct()
    )
