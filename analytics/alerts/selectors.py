"""Reads for the alert pages: a rule's metric day by day, and its events, for the history chart;
and, for the rolling-window rules, the value the rule evaluates hour by hour."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from analytics.models import CallRollup, RequestMinute
from analytics.rollups import floor_hour
from analytics.timezones import day_bounds, reporting_zone, today

from .alerting import measure
from .models import AlertEvent, AlertRule

Metric = AlertRule.Metric
HISTORY_DAYS = 14
ROLLING_HOURS = 48
# The rules that evaluate a rolling window (the others look at the day so far, or are external).
ROLLING_METRICS = (Metric.SUCCESS_RATE, Metric.AVG_LATENCY, Metric.HTTP_ERROR_RATE)


@dataclass(frozen=True)
class RuleHistory:
    """One value per day (None: no verdict that day), and the events that started each day."""

    days: list[date]
    values: list[Decimal | None]
    events: list[list[AlertEvent]]
    measured: bool  # False: the metric has no daily history (an external metric); events only


def _daily_rollups(first: date, last: date, **filters) -> dict[date, Any]:
    start, _ = day_bounds(first)
    _, end = day_bounds(last)
    rows = (
        CallRollup.objects.filter(
            period=CallRollup.Period.DAY, bucket_start__gte=start, bucket_start__lt=end, **filters
        )
        .values("bucket_start")
        .annotate(
            calls=Sum("calls"),
            errors=Sum("errors"),
            latency_ms_sum=Sum("latency_ms_sum"),
            cost_usd=Sum("cost_usd"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
        )
    )
    zone = reporting_zone()
    return {row["bucket_start"].astimezone(zone).date(): row for row in rows}


def _daily_requests(first: date, last: date) -> dict[date, Any]:
    start, _ = day_bounds(first)
    _, end = day_bounds(last)
    rows = (
        RequestMinute.objects.filter(minute__gte=start, minute__lt=end)
        .annotate(day=TruncDate("minute", tzinfo=reporting_zone()))
        .values("day")
        .annotate(requests=Sum("requests"), errors=Sum("errors_5xx"))
    )
    return {row["day"]: row for row in rows}


def _ratio(part, whole) -> Decimal:
    return Decimal(part) / Decimal(whole)


def daily_values(rule: AlertRule, days: list[date]) -> list[Decimal | None] | None:
    """Return the rule's metric over each whole day (the day so far for today), or None when
    the metric has no daily history. Days with fewer samples than the rule needs are None."""
    first, last = days[0], days[-1]
    need = max(rule.min_samples, 1)
    if rule.metric in (Metric.SUCCESS_RATE, Metric.DAILY_COST):
        rows = _daily_rollups(first, last)
        if rule.metric == Metric.DAILY_COST:
            return [Decimal(rows[d]["cost_usd"]) if d in rows else None for d in days]
        return [
            1 - _ratio(rows[d]["errors"], rows[d]["calls"])
            if d in rows and rows[d]["calls"] >= need
            else None
            for d in days
        ]
    if rule.metric == Metric.AVG_LATENCY:
        rows = _daily_rollups(first, last, status="ok")
        return [
            _ratio(rows[d]["latency_ms_sum"], rows[d]["calls"]) / 1000
            if d in rows and rows[d]["calls"] >= need
            else None
            for d in days
        ]
    if rule.metric == Metric.DAILY_TOKENS_RATIO:
        rows = _daily_rollups(first - timedelta(days=rule.baseline_days), last)
        tokens = {d: row["input_tokens"] + row["output_tokens"] for d, row in rows.items()}
        values: list[Decimal | None] = []
        for d in days:
            past = [d - timedelta(days=i) for i in range(1, rule.baseline_days + 1)]
            history = [tokens[p] for p in past if p in tokens]
            average = Decimal(sum(history)) / Decimal(max(rule.baseline_days, 1))
            if len(history) < rule.min_history_days or not average or d not in tokens:
                values.append(None)
            else:
                values.append(Decimal(tokens[d]) / average)
        return values
    if rule.metric == Metric.HTTP_ERROR_RATE:
        rows = _daily_requests(first, last)
        return [
            _ratio(rows[d]["errors"], rows[d]["requests"])
            if d in rows and rows[d]["requests"] >= need
            else None
            for d in days
        ]
    return None


def rule_history(rule: AlertRule, *, days: int = HISTORY_DAYS) -> RuleHistory:
    """Return the last ``days`` days (today included) of ``rule``: its metric and its events."""
    last = today()
    dates = [last - timedelta(days=i) for i in range(days - 1, -1, -1)]
    values = daily_values(rule, dates)
    start, _ = day_bounds(dates[0])
    by_day: dict[date, list[AlertEvent]] = {d: [] for d in dates}
    zone = reporting_zone()
    for event in rule.events.filter(started_at__gte=start).order_by("started_at"):
        by_day.setdefault(event.started_at.astimezone(zone).date(), []).append(event)
    return RuleHistory(
        days=dates,
        values=values if values is not None else [None] * len(dates),
        events=[by_day[d] for d in dates],
        measured=values is not None,
    )


@dataclass(frozen=True)
class RollingHistory:
    """The value the rule evaluates at the end of each hour (the last point: now), with the
    events that started in the hour up to each point."""

    moments: list[datetime]
    values: list[Decimal | None]
    events: list[list[AlertEvent]]


def rolling_history(
    rule: AlertRule, *, hours: int = ROLLING_HOURS, now: datetime | None = None
) -> RollingHistory | None:
    """Return the last ``hours`` hours of a rolling-window rule as the rule itself measures
    them (``alerting.measure`` at each hour's end and now: one small rollup query each); None
    for a rule without a rolling window."""
    if rule.metric not in ROLLING_METRICS:
        return None
    now = now or timezone.now()
    moments = [floor_hour(now) - timedelta(hours=k) for k in range(hours - 2, -1, -1)] + [now]
    values = [measure(rule, moment).value for moment in moments]
    events: list[list[AlertEvent]] = [[] for _ in moments]
    start = moments[0] - timedelta(hours=1)
    for event in rule.events.filter(started_at__gt=start, started_at__lte=now):
        index = next(i for i, moment in enumerate(moments) if event.started_at <= moment)
        events[index].append(event)
    return RollingHistory(moments=moments, values=values, events=events)
