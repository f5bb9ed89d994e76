"""The alert rule page's history: a server-rendered chart and the recent events, formatted."""

from decimal import Decimal

from django.urls import reverse
from django.utils.safestring import mark_safe

from analytics import charts
from analytics.timezones import reporting_zone

from .models import AlertRule
from .notify import calls_url
from .selectors import ROLLING_HOURS, rolling_history, rule_history


def _worst(rule: AlertRule, values):
    """The value furthest past the threshold among a day's events."""
    return min(values) if rule.comparison == AlertRule.Comparison.LESS else max(values)


def rule_history_context(rule: AlertRule) -> dict:
    """Return the template context of the rule page's history section."""
    history = rule_history(rule)
    labels = [f"{d:%b} {d.day}" for d in history.days]
    fired = [
        _worst(rule, [e.value for e in events]) if events else None for events in history.events
    ]
    series = {}
    if history.measured:
        series["daily value"] = history.values
    series["threshold"] = [rule.threshold] * len(labels)
    series["alert fired"] = fired
    title = f"{rule.name}: {rule.get_metric_display()} per day, last {len(labels)} days"
    svg = charts.lines(labels, series, title=title, value_format=rule.format_value)
    events = [
        {
            "url": reverse("admin:alerts_alertevent_change", args=[event.pk]),
            "started_at": event.started_at,
            "resolved_at": event.resolved_at,
            "state": event.get_state_display(),
            "value": event.value_display,
            "condition": event.condition,
            "calls_url": calls_url(event, absolute=False),
        }
        for day_events in reversed(history.events)
        for event in reversed(day_events)
    ]
    return {
        # charts.lines escapes every text it writes.
        "history_chart": mark_safe(svg),  # noqa: S308
        "rolling_chart": _rolling_chart(rule),
        "rolling_hours": ROLLING_HOURS,
        "history_measured": history.measured,
        "history_events": events,
        "history_days": len(labels),
    }


def _rolling_chart(rule: AlertRule):
    """The value the rule evaluates (its rolling window) at each hour's end, against the
    threshold, with the alerts that started; None for a rule without a rolling window."""
    history = rolling_history(rule)
    if history is None:
        return None
    zone = reporting_zone()
    local = [moment.astimezone(zone) for moment in history.moments]
    labels = [f"{m:%b} {m.day} {m:%H}:00" for m in local[:-1]] + ["now"]
    series: dict[str, list[Decimal | None]] = {
        f"rolling {rule.window_minutes}-minute value": history.values,
        "threshold": [rule.threshold] * len(labels),
        "alert fired": [
            _worst(rule, [e.value for e in events]) if events else None for events in history.events
        ],
    }
    title = f"{rule.name}: the value the rule evaluates, hour by hour, last {len(labels)} hours"
    svg = charts.lines(labels, series, title=title, value_format=rule.format_value)
    return mark_safe(svg)  # noqa: S308 (charts.lines escapes every text it writes)
