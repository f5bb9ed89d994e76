"""Guardrails: a worse treatment is paused by the monitor's check and the alert fires."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from analytics.alerts.alerting import evaluate_rule
from analytics.alerts.models import AlertEvent, AlertRule
from analytics.tests.factories import make_call, make_price, make_user
from experiments import services
from experiments.config import resolve_config
from experiments.guardrails import check_guardrails
from experiments.tests.factories import make_canary, make_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def running():
    control, treatment = make_version("a", model="cheap"), make_version("b", model="dear")
    exp = make_canary(
        control=control, treatment=treatment, guardrail_min_calls=100, start=True
    ).experiment
    make_price(model="cheap", inp="1", out="1")
    make_price(model="dear", inp="1", out="1")
    return exp


def calls(key, n, *, errors=0, model="cheap", input_tokens=100):
    now = timezone.now()
    for i in range(n):
        make_call(
            created_at=now,
            model=model,
            variant=f"canary/{key}",
            input_tokens=input_tokens,
            status="error" if i < errors else "ok",
        )


def test_a_treatment_with_more_errors_is_paused_and_the_alert_fires(running):
    make_user("boss", is_staff=True, is_superuser=True)
    calls("control", 100, errors=2)
    calls("experiment", 100, errors=8, model="dear")  # 8% vs 2%: over the 5-point margin
    services.set_traffic(experiment=running, percent=100)
    user = make_user("served")
    for _ in range(2):  # the second is served from this process's cache (experiments.config)
        assert resolve_config(user, "chat").variant.startswith("canary/")
    paused = check_guardrails()
    assert paused and "error rate 8.0% vs control 2.0%" in paused[0]
    assert resolve_config(user, "chat").variant == ""  # the pause applies here at once
    running.refresh_from_db()
    assert running.status == "paused" and running.paused_by_guardrail_at is not None
    assert check_guardrails() == []  # already paused
    rule = AlertRule.objects.get(name="Experiment guardrail")
    now = timezone.now()
    assert evaluate_rule(rule, now).action == "fired"
    assert "[FIRING] Experiment guardrail" in mail.outbox[0].subject
    services.resume_experiment(experiment=running)
    assert evaluate_rule(rule, now + timedelta(minutes=1)).action == "resolved"
    assert AlertEvent.objects.get().state == "resolved"


def test_errors_within_the_margin_do_not_pause(running):
    calls("control", 100, errors=2)
    calls("experiment", 100, errors=7, model="dear")  # 7% vs 2%: exactly the margin
    assert check_guardrails() == []


def test_a_dearer_treatment_is_paused(running):
    calls("control", 100, input_tokens=1000)
    calls("experiment", 100, input_tokens=1600, model="dear")  # 60% dearer, margin 50%
    paused = check_guardrails()
    assert paused and "cost per call" in paused[0]


def test_too_few_calls_never_pause(running):
    calls("control", 99)
    calls("experiment", 99, errors=99, model="dear")
    assert check_guardrails() == []
