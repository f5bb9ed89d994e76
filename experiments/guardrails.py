"""Guardrails of running experiments, checked by `monitor`: a treatment whose error rate or
cost per call exceeds its control's by the experiment's margin, with enough calls on both sides,
is paused at once, and the "Experiment guardrail" alert fires (see docs/experiments.md)."""

import logging
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Avg, Count, Q
from django.utils import timezone

from analytics.alerts.alerting import Measurement
from analytics.models import AICall
from core.task_types import TaskType

from .config import SERVING
from .models import Experiment

logger = logging.getLogger(__name__)
ERROR_STATUSES = ("error", "timeout", "rate_limited")


def _group(experiment: Experiment, variant) -> dict:
    calls = AICall.objects.filter(variant=variant.label, task_type=TaskType.CHAT)
    if experiment.started_at:
        calls = calls.filter(created_at__gte=experiment.started_at)
    return calls.aggregate(
        n=Count("id"),
        errors=Count("id", filter=Q(status__in=ERROR_STATUSES)),
        cost=Avg("cost_usd"),
    )


def breach_of(experiment: Experiment) -> str:
    """Return why a treatment breaches a guardrail, or "" when none does."""
    variants = list(experiment.variants.select_related("experiment"))
    control = next((v for v in variants if v.is_control), None)
    if control is None:
        return ""
    c = _group(experiment, control)
    if c["n"] < experiment.guardrail_min_calls:
        return ""
    c_error = Decimal(c["errors"]) / Decimal(c["n"])
    for variant in variants:
        if variant.is_control:
            continue
        t = _group(experiment, variant)
        if t["n"] < experiment.guardrail_min_calls:
            continue
        t_error = Decimal(t["errors"]) / Decimal(t["n"])
        if t_error > c_error + experiment.guardrail_error_rate_margin:
            return (
                f"{variant.key}: error rate {t_error:.1%} vs control {c_error:.1%} "
                f"(margin {experiment.guardrail_error_rate_margin:.1%}, {t['n']} calls)"
            )
        if c["cost"] and t["cost"]:
            limit = c["cost"] * (1 + experiment.guardrail_cost_margin)
            if t["cost"] > limit:
                return (
                    f"{variant.key}: cost per call ${t['cost']:.6f} vs control ${c['cost']:.6f} "
                    f"(margin {experiment.guardrail_cost_margin:.0%}, {t['n']} calls)"
                )
    return ""


def check_guardrails(now: datetime | None = None) -> list[str]:
    """Pause every running experiment with a breached guardrail; return what was paused."""
    now = now or timezone.now()
    paused = []
    for experiment in Experiment.objects.filter(status=Experiment.Status.RUNNING):
        reason = breach_of(experiment)
        if not reason:
            continue
        # Conditional update: with two monitors, one pauses it.
        if Experiment.objects.filter(pk=experiment.pk, status=Experiment.Status.RUNNING).update(
            status=Experiment.Status.PAUSED, paused_by_guardrail_at=now, guardrail_reason=reason
        ):
            SERVING.changed()
            logger.warning("experiment %s paused by a guardrail: %s", experiment.key, reason)
            paused.append(f"{experiment.key} ({reason})")
    return paused


def guardrail_measurement(rule, now: datetime) -> Measurement:
    """The alert metric: experiments paused by a guardrail within the window and still paused."""
    since = now - timedelta(minutes=rule.window_minutes)
    count = Experiment.objects.filter(
        status=Experiment.Status.PAUSED, paused_by_guardrail_at__gte=since
    ).count()
    return Measurement(Decimal(count), count, since, now)
