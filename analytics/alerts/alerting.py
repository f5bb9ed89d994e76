"""Alert evaluation: each rule's metric from rollups and request counts, then fire or resolve.

Safe with two monitors at once: a partial unique index allows one firing event per rule, and
every notification is claimed with a conditional update, so exactly one monitor sends it.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from analytics.models import CallRollup, RequestMinute
from analytics.rollups import floor_hour
from analytics.timezones import day_bounds, local_day

from .models import AlertEvent, AlertRule
from .notify import notify

logger = logging.getLogger(__name__)
Metric = AlertRule.Metric


@dataclass(frozen=True)
class Measurement:
    """A metric's value over a window, or no verdict (``value`` None) with the reason."""

    value: Decimal | None
    samples: int
    window_start: datetime
    window_end: datetime
    reason: str = ""


def _sum(rows, *fields):
    totals = rows.aggregate(**{f: Sum(f) for f in fields})
    return {f: totals[f] or 0 for f in fields}


def _hourly(start, end):
    return CallRollup.objects.filter(
        period=CallRollup.Period.HOUR, bucket_start__gte=floor_hour(start), bucket_start__lt=end
    )


# Metrics measured by other apps (experiments registers its guardrail metric), so that this app
# depends on none of them.
EXTERNAL_METRICS: dict[str, Callable[[AlertRule, datetime], Measurement]] = {}


def register_metric(name: str, measure_fn: Callable[[AlertRule, datetime], Measurement]) -> None:
    EXTERNAL_METRICS[name] = measure_fn


def measure(rule: AlertRule, now: datetime) -> Measurement:
    """Return the rule's metric now (rolling windows are rounded out to whole hours)."""
    if rule.metric in EXTERNAL_METRICS:
        return EXTERNAL_METRICS[rule.metric](rule, now)
    window_start = now - timedelta(minutes=rule.window_minutes)
    day_start, _ = day_bounds(local_day(now))

    if rule.metric == Metric.SUCCESS_RATE:
        s = _sum(_hourly(window_start, now), "calls", "errors")
        if s["calls"] < rule.min_samples:
            return Measurement(None, s["calls"], window_start, now, "too few calls")
        rate = Decimal(s["calls"] - s["errors"]) / Decimal(s["calls"])
        return Measurement(rate, s["calls"], window_start, now)

    if rule.metric == Metric.AVG_LATENCY:
        s = _sum(_hourly(window_start, now).filter(status="ok"), "calls", "latency_ms_sum")
        if s["calls"] < rule.min_samples:
            return Measurement(None, s["calls"], window_start, now, "too few calls")
        seconds = Decimal(s["latency_ms_sum"]) / Decimal(s["calls"]) / 1000
        return Measurement(seconds, s["calls"], window_start, now)

    daily = CallRollup.objects.filter(period=CallRollup.Period.DAY)
    if rule.metric == Metric.DAILY_COST:
        s = _sum(daily.filter(bucket_start=day_start), "calls", "cost_usd")
        if s["calls"] == 0:
            return Measurement(None, 0, day_start, now, "no calls today")
        return Measurement(Decimal(s["cost_usd"]), s["calls"], day_start, now)

    if rule.metric == Metric.DAILY_TOKENS_RATIO:
        today = _sum(daily.filter(bucket_start=day_start), "calls", "input_tokens", "output_tokens")
        baseline_start = day_start - timedelta(days=rule.baseline_days)
        past = daily.filter(bucket_start__gte=baseline_start, bucket_start__lt=day_start)
        history_days = past.values("bucket_start").distinct().count()
        if history_days < rule.min_history_days:
            return Measurement(None, today["calls"], day_start, now, "not enough history")
        past_tokens = _sum(past, "input_tokens", "output_tokens")
        average = Decimal(past_tokens["input_tokens"] + past_tokens["output_tokens"]) / Decimal(
            rule.baseline_days
        )
        if average == 0:
            return Measurement(None, today["calls"], day_start, now, "no baseline tokens")
        ratio = Decimal(today["input_tokens"] + today["output_tokens"]) / average
        return Measurement(ratio, today["calls"], day_start, now)

    if rule.metric == Metric.HTTP_ERROR_RATE:
        minute_start = window_start.replace(second=0, microsecond=0)
        s = _sum(
            RequestMinute.objects.filter(minute__gte=minute_start, minute__lte=now),
            "requests",
            "errors_5xx",
        )
        if s["requests"] < rule.min_samples:
            return Measurement(None, s["requests"], window_start, now, "too few requests")
        rate = Decimal(s["errors_5xx"]) / Decimal(s["requests"])
        return Measurement(rate, s["requests"], window_start, now)

    raise ValueError(f"unknown metric {rule.metric!r}")


@dataclass(frozen=True)
class Outcome:
    rule: str
    action: str  # fired, still_firing, renotified, resolved, ok, no_data
    value: Decimal | None


def evaluate_rule(rule: AlertRule, now: datetime) -> Outcome:
    m = measure(rule, now)
    breached = m.value is not None and rule.breached(m.value)
    open_event = AlertEvent.objects.filter(rule=rule, state=AlertEvent.State.FIRING).first()

    if breached and open_event is None:
        assert m.value is not None  # breached implies a value
        try:
            with transaction.atomic():
                event = AlertEvent.objects.create(
                    rule=rule,
                    value=m.value,
                    threshold=rule.threshold,
                    samples=m.samples,
                    window_start=m.window_start,
                    window_end=m.window_end,
                    started_at=now,
                    last_notified_at=now,
                )
        except IntegrityError:  # another monitor opened it a moment ago
            return Outcome(rule.name, "still_firing", m.value)
        _send(event, "firing")
        return Outcome(rule.name, "fired", m.value)

    if breached:
        assert open_event is not None  # the branch above returned otherwise
        AlertEvent.objects.filter(pk=open_event.pk).update(
            value=m.value, samples=m.samples, window_start=m.window_start, window_end=m.window_end
        )
        due = open_event.last_notified_at is None or now - open_event.last_notified_at >= timedelta(
            minutes=rule.cooldown_minutes
        )
        # Claim the reminder: only the monitor whose update matched sends it.
        if due and AlertEvent.objects.filter(
            pk=open_event.pk, last_notified_at=open_event.last_notified_at
        ).update(last_notified_at=now):
            open_event.refresh_from_db()
            _send(open_event, "still firing")
            return Outcome(rule.name, "renotified", m.value)
        return Outcome(rule.name, "still_firing", m.value)

    if open_event is not None:
        # No data is not an alert: a firing rule without a verdict resolves too.
        resolved = AlertEvent.objects.filter(
            pk=open_event.pk, state=AlertEvent.State.FIRING
        ).update(state=AlertEvent.State.RESOLVED, resolved_at=now)
        if resolved:
            open_event.refresh_from_db()
            if m.value is not None:
                AlertEvent.objects.filter(pk=open_event.pk).update(value=m.value)
                open_event.value = m.value
            _send(open_event, "resolved")
            return Outcome(rule.name, "resolved", m.value)
    return Outcome(rule.name, "ok" if m.value is not None else "no_data", m.value)


def _send(event: AlertEvent, state: str) -> None:
    results = notify(event, state)
    AlertEvent.objects.filter(pk=event.pk).update(
        notifications=[*(event.notifications or []), *results]
    )


def evaluate_all(now: datetime | None = None) -> list[Outcome]:
    now = now or timezone.now()
    outcomes = []
    for rule in AlertRule.objects.filter(enabled=True).prefetch_related("channels"):
        try:
            outcomes.append(evaluate_rule(rule, now))
        except Exception:  # one broken rule must not stop the others
            logger.exception("evaluating alert rule %r failed", rule.name)
    return outcomes


def firing_events():
    return AlertEvent.objects.filter(state=AlertEvent.State.FIRING).select_related("rule")
