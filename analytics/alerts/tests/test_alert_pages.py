"""Alerts as staff read them: values in each metric's unit everywhere, the calls behind an event,
and the history charts on the rule's page (per day, and the rolling window hour by hour)."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from analytics.alerts.alerting import evaluate_rule
from analytics.alerts.models import AlertEvent, AlertRule
from analytics.alerts.selectors import rolling_history
from analytics.rollups import floor_hour, rollup_range
from analytics.tests.factories import make_call, make_user
from analytics.timezones import day_bounds, local_day, today

from . import test_alerts
from .test_alerts import Receiver, day_row, hour_rows, webhook

pytestmark = pytest.mark.django_db


def rule(name: str) -> AlertRule:
    return AlertRule.objects.get(name=name)


now = pytest.fixture(test_alerts.now.__wrapped__, name="now")  # mid-day yesterday


@pytest.fixture
def boss(client):
    user = make_user("boss", is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


@pytest.mark.parametrize(
    ("name", "value", "shown", "condition"),
    [
        ("AI call success rate", "0.717949", "71.79%", "< 95%"),
        ("HTTP error rate", "0.0625", "6.25%", "> 5%"),
        ("Average AI response time", "12.3456", "12.35 s", "> 10 s"),
        ("Average AI response time", "0.85", "850 ms", "> 10 s"),
        ("Daily cost", "25", "$25.00", "> $10.00"),
        ("Daily cost", "0.123456", "$0.1235", "> $10.00"),
        ("Daily tokens", "3.5", "3.5\N{MULTIPLICATION SIGN}", "> 3\N{MULTIPLICATION SIGN}"),
        ("Experiment guardrail", "1", "1", "> 0"),
    ],
)
def test_each_metric_is_shown_in_its_unit(name, value, shown, condition):
    r = rule(name)
    assert r.format_value(Decimal(value)) == shown
    assert r.condition == condition


@pytest.fixture
def low_success(now):
    """A success-rate alert at 71.79% (28 of 39 calls), with its calls in the window."""
    hour_rows(now, ok=28, errors=11)
    return now


def test_an_event_is_shown_in_its_unit_in_the_admin_and_messages(
    client, boss, low_success, settings
):
    settings.SITE_URL = "https://chat.example.com"
    receiver = Receiver()
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True
    try:
        success = rule("AI call success rate")
        success.channels.add(webhook(receiver, "generic"))
        assert evaluate_rule(success, low_success).action == "fired"
    finally:
        receiver.server.shutdown()
    event = AlertEvent.objects.get()
    assert event.value == Decimal("0.717949")  # as stored

    pages = {
        "event list": reverse("admin:alerts_alertevent_changelist"),
        "event page": reverse("admin:alerts_alertevent_change", args=[event.pk]),
        "rule list": reverse("admin:alerts_alertrule_changelist"),
        "rule page": reverse("admin:alerts_alertrule_change", args=[success.pk]),
        "admin index": reverse("admin:index"),
    }
    for where, url in pages.items():
        html = client.get(url).content.decode()
        if where == "rule page":  # its form edits the stored ratio: the history above it
            assert 'name="threshold" value="0.9500"' in html and "0.95 means 95%" in html
            html = html[: html.index('id="alertrule_form"')]
        assert "&lt; 95%" in html, where
        assert "0.7179" not in html and "0.95" not in html, where
        if where != "rule list":
            assert "71.79%" in html, where

    text = next(m for m in mail.outbox if m.subject == "[FIRING] AI call success rate").body
    assert "AI call success rate: 71.79% (fires when < 95%), 39 samples" in text
    assert "0.7179" not in text
    body = receiver.bodies[0]
    assert body["value_text"] == "71.79%" and body["threshold_text"] == "95%"
    assert "71.79% (fires when < 95%)" in body["text"]
    assert body["calls_url"].startswith("https://chat.example.com/admin/analytics/aicall/?")
    assert f"Calls: {body['calls_url']}" in text


def test_check_alerts_prints_values_in_their_unit(capsys):
    day_row(local_day(timezone.now()), cost="25")
    call_command("check_alerts", "--no-rollup")
    assert "Daily cost: fired ($25.00)" in capsys.readouterr().out


def _listed_request_ids(client, url: str) -> set[str]:
    html = client.get(url).content.decode()
    return set(re.findall(r"req-[a-z0-9-]+", html))


def test_an_event_links_to_the_calls_behind_it(client, boss, now):
    start = floor_hour(now)
    inside = [
        make_call(created_at=start + timedelta(minutes=5), status="ok", request_id="req-in-ok"),
        make_call(created_at=now - timedelta(minutes=1), status="error", request_id="req-in-err"),
        make_call(created_at=start, status="timeout", request_id="req-in-timeout"),
    ]
    make_call(created_at=start - timedelta(minutes=1), request_id="req-before")
    make_call(created_at=now + timedelta(minutes=1), status="error", request_id="req-after")
    rollup_range(start - timedelta(hours=2), now + timedelta(hours=2))
    # A 30-minute window from 12:30 is the 12:00 hour (rollups count whole hours); three calls
    # in it, one ok: 33% < 95%.
    success = rule("AI call success rate")
    success.min_samples, success.window_minutes = 3, 30
    success.save()
    assert evaluate_rule(success, now).action == "fired"
    event = AlertEvent.objects.get()

    listing = client.get(reverse("admin:alerts_alertevent_changelist")).content.decode()
    links = dict(
        (kind, href.replace("&amp;", "&"))
        for href, kind in re.findall(r'<a href="([^"]+)" data-calls="(\w+)"', listing)
    )
    assert set(links) == {"all", "failed"}
    assert _listed_request_ids(client, links["all"]) == {c.request_id for c in inside}
    assert _listed_request_ids(client, links["failed"]) == {"req-in-err", "req-in-timeout"}
    page = client.get(reverse("admin:alerts_alertevent_change", args=[event.pk])).content.decode()
    assert 'data-calls="all"' in page


def test_the_latency_rule_links_to_its_successful_calls_only(client, boss, now):
    make_call(created_at=now - timedelta(minutes=10), latency_ms=20_000, request_id="req-slow")
    make_call(created_at=now - timedelta(minutes=9), status="error", request_id="req-failed")
    rollup_range(now - timedelta(hours=2), now + timedelta(hours=2))
    latency = rule("Average AI response time")
    latency.min_samples = 1
    latency.save()
    assert evaluate_rule(latency, now).action == "fired"
    page = client.get(reverse("admin:alerts_alertevent_changelist")).content.decode()
    (href,) = re.findall(r'<a href="([^"]+)" data-calls="all"', page)
    assert _listed_request_ids(client, href.replace("&amp;", "&")) == {"req-slow"}
    assert "20 s" in page and "&gt; 10 s" in page


def test_the_rule_page_charts_its_history_in_the_metrics_unit(client, boss):
    cost = rule("Daily cost")
    day = today()
    day_row(day - timedelta(days=2), cost="4")
    day_row(day - timedelta(days=1), cost="25")
    start, _ = day_bounds(day - timedelta(days=1))
    AlertEvent.objects.create(
        rule=cost,
        value=Decimal("25"),
        threshold=cost.threshold,
        samples=10,
        window_start=start,
        window_end=start + timedelta(hours=20),
        started_at=start + timedelta(hours=20),
        state="resolved",
        resolved_at=start + timedelta(hours=30),
    )
    html = client.get(reverse("admin:alerts_alertrule_change", args=[cost.pk])).content.decode()
    section = html[html.index('data-section="alert-history"') : html.index('id="alertrule_form"')]
    svg = section[section.index("<svg") : section.index("</svg>")]
    label = lambda d: f"{d:%b} {d.day}"  # noqa: E731
    # The day's values, the threshold and the day the alert fired, each as a dot with its title.
    assert f"{label(day - timedelta(days=2))} · daily value: $4.00" in svg
    assert f"{label(day - timedelta(days=1))} · daily value: $25.00" in svg
    assert f"{label(day)} · threshold: $10.00" in svg
    assert f"{label(day - timedelta(days=1))} · alert fired: $25.00" in svg
    assert "alert fired" in svg and svg.count("· alert fired:") == 1
    assert "$25.00" in section[section.index('data-table="alert-events"') :]
    assert " style=" not in section and "<script" not in section


def test_the_history_of_a_metric_without_daily_values_shows_its_events(client, boss):
    guardrail = rule("Experiment guardrail")
    html = client.get(reverse("admin:alerts_alertrule_change", args=[guardrail.pk]))
    page = html.content.decode()
    assert "has no daily history" in page and "No alert in the last 14 days." in page


def test_the_rolling_window_hour_by_hour_is_what_the_rule_evaluates(now):
    success = rule("AI call success rate")
    success.window_minutes, success.min_samples = 60, 20
    success.save()
    hour = floor_hour(now)
    # The hours before now: 30 good calls each, and 0, 6, 12 then 3 failed ones (newest first).
    for back, errors in enumerate([0, 6, 12, 3], start=1):
        hour_rows(hour - timedelta(hours=back), ok=30, errors=errors)
    hour_rows(hour - timedelta(hours=6), ok=5)  # too few calls for a verdict
    fired = AlertEvent.objects.create(
        rule=success, value=Decimal("0.714286"), threshold=success.threshold, samples=42,
        window_start=hour - timedelta(hours=3), window_end=hour - timedelta(hours=2),
        started_at=hour - timedelta(hours=2) + timedelta(minutes=10), state="resolved",
    )  # fmt: skip

    history = rolling_history(success, now=now)
    assert history is not None and len(history.moments) == 48
    assert history.moments[-1] == now and history.moments[-2] == hour
    at = {moment: value for moment, value in zip(history.moments, history.values, strict=True)}
    # At an hour's end the 60-minute window is the hour before it.
    assert at[hour] == Decimal(30) / Decimal(30)
    assert at[hour - timedelta(hours=1)] == Decimal(30) / Decimal(36)
    assert at[hour - timedelta(hours=2)] == Decimal(30) / Decimal(42)
    assert at[hour - timedelta(hours=3)] == Decimal(30) / Decimal(33)
    assert at[hour - timedelta(hours=4)] is None  # no calls in the hour before
    assert at[hour - timedelta(hours=5)] is None  # 5 calls: fewer than the rule needs
    assert at[now] == Decimal(1)  # now (12:30): the whole hour before, plus this one so far
    # The alert started at 10:10 shows at the point that follows it, 11:00.
    index = history.moments.index(hour - timedelta(hours=1))
    assert history.events[index] == [fired]
    assert sum(len(events) for events in history.events) == 1

    assert rolling_history(rule("Daily cost"), now=now) is None  # the day so far: no window


def test_the_rule_page_charts_the_rolling_window(client, boss):
    success = rule("AI call success rate")
    hour_rows(timezone.now() - timedelta(hours=1), ok=40, errors=10)
    html = client.get(reverse("admin:alerts_alertrule_change", args=[success.pk])).content.decode()
    section = html[html.index('data-chart="alert-rolling"') : html.index('id="alertrule_form"')]
    svg = section[section.index("<svg") : section.index("</svg>")]
    assert "What the rule evaluates, last 48 hours" in html
    assert svg.count('class="chart-band"') == 48 and "now · threshold: 95%" in svg
    assert f"rolling {success.window_minutes}-minute value" in svg
    assert " style=" not in section and "<script" not in section
    cost = rule("Daily cost")
    html = client.get(reverse("admin:alerts_alertrule_change", args=[cost.pk])).content.decode()
    assert 'data-chart="alert-rolling"' not in html and 'data-chart="alert-history"' in html
