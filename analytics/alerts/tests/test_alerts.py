"""The five alert rules, their lifecycle, two monitors at once, and every notification format."""

import http.server
import json
import threading
from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from analytics.alerts.alerting import evaluate_all, evaluate_rule, measure
from analytics.alerts.models import AlertEvent, AlertRule, NotificationChannel
from analytics.models import CallRollup, RequestMinute
from analytics.rollups import floor_hour
from analytics.tests.factories import make_user
from analytics.timezones import day_bounds, local_day, reporting_zone

pytestmark = pytest.mark.django_db


def rule(name: str) -> AlertRule:
    return AlertRule.objects.get(name=name)


def hour_rows(now, *, ok=0, errors=0, latency_ms=1000, model="m"):
    start = floor_hour(now)
    if ok:
        CallRollup.objects.create(
            period="hour",
            bucket_start=start,
            model=model,
            task_type="chat",
            status="ok",
            calls=ok,
            latency_ms_sum=ok * latency_ms,
        )
    if errors:
        CallRollup.objects.create(
            period="hour",
            bucket_start=start,
            model=model,
            task_type="chat",
            status="error",
            calls=errors,
            errors=errors,
            latency_ms_sum=errors * 100,
        )


def day_row(day, *, calls=10, tokens=0, cost="0", model="m"):
    start, _ = day_bounds(day)
    CallRollup.objects.create(
        period="day",
        bucket_start=start,
        model=model,
        task_type="chat",
        status="ok",
        calls=calls,
        input_tokens=tokens,
        cost_usd=Decimal(cost),
    )


@pytest.fixture
def now():
    # Mid-day (of yesterday, so always in the past) in the reporting zone, so that "the day so
    # far" and the rolling windows stay inside one day and one hour whatever the time the suite
    # runs: with the current hour, a run at 23:xx put "now + 30 minutes" on the next day.
    zone = reporting_zone()
    yesterday = timezone.localtime(timezone.now(), zone).date() - timedelta(days=1)
    return datetime.combine(yesterday, time(12, 30), tzinfo=zone)


def test_the_five_rules_are_seeded_enabled_with_their_causes():
    rules = {r.name: r for r in AlertRule.objects.all()}
    assert set(rules) == {
        "AI call success rate",
        "Average AI response time",
        "Daily tokens",
        "Daily cost",
        "HTTP error rate",
        "Experiment guardrail",
    }
    assert all(r.enabled and r.channels.exists() for r in rules.values())
    assert "quota" in rules["AI call success rate"].likely_cause
    assert rules["Daily cost"].threshold == Decimal("10")


# --- each rule below, at and above its threshold ------------------------------------------------


@pytest.mark.parametrize(
    ("ok", "errors", "fires"),
    [(96, 4, False), (95, 5, False), (94, 6, True)],  # 96%, exactly 95%, 94%
)
def test_success_rate(now, ok, errors, fires):
    hour_rows(now, ok=ok, errors=errors)
    m = measure(rule("AI call success rate"), now)
    assert m.value == Decimal(ok) / 100
    assert (evaluate_rule(rule("AI call success rate"), now).action == "fired") is fires


@pytest.mark.parametrize(("latency_ms", "fires"), [(9999, False), (10000, False), (10001, True)])
def test_average_response_time(now, latency_ms, fires):
    hour_rows(now, ok=30, latency_ms=latency_ms)
    assert (evaluate_rule(rule("Average AI response time"), now).action == "fired") is fires


@pytest.mark.parametrize(("cost", "fires"), [("9.99", False), ("10", False), ("10.01", True)])
def test_daily_cost(now, cost, fires):
    day_row(local_day(now), cost=cost)
    assert (evaluate_rule(rule("Daily cost"), now).action == "fired") is fires


@pytest.mark.parametrize(("today", "fires"), [(2999, False), (3000, False), (3001, True)])
def test_daily_tokens_against_three_times_the_average(now, today, fires):
    day = local_day(now)
    for ago in range(1, 8):
        day_row(day - timedelta(days=ago), tokens=1000)  # average 1,000 a day
    day_row(day, tokens=today)
    m = measure(rule("Daily tokens"), now)
    assert m.value == Decimal(today) / 1000
    assert (evaluate_rule(rule("Daily tokens"), now).action == "fired") is fires


def test_daily_tokens_needs_three_days_of_history(now):
    day = local_day(now)
    for ago in (1, 2):
        day_row(day - timedelta(days=ago), tokens=100)
    day_row(day, tokens=1_000_000)
    assert measure(rule("Daily tokens"), now).reason == "not enough history"
    assert evaluate_rule(rule("Daily tokens"), now).action == "no_data"
    day_row(day - timedelta(days=3), tokens=100)
    assert evaluate_rule(rule("Daily tokens"), now).action == "fired"


@pytest.mark.parametrize(("errors", "fires"), [(4, False), (5, False), (6, True)])
def test_http_error_rate(now, errors, fires):
    minute = now - timedelta(minutes=10)
    RequestMinute.objects.create(minute=minute, requests=100, errors_5xx=errors)
    RequestMinute.objects.create(minute=now - timedelta(hours=3), requests=1000, errors_5xx=1000)
    assert (evaluate_rule(rule("HTTP error rate"), now).action == "fired") is fires


def test_minimum_samples_and_no_data_never_fire(now):
    hour_rows(now, errors=19)  # 0% success, but only 19 calls
    RequestMinute.objects.create(minute=now - timedelta(minutes=1), requests=19, errors_5xx=19)
    outcomes = {o.rule: o.action for o in evaluate_all(now)}
    assert outcomes.pop("Experiment guardrail") == "ok"  # no experiment paused
    assert set(outcomes.values()) == {"no_data"}
    assert not AlertEvent.objects.exists()


# --- lifecycle ------------------------------------------------------------------------------


class Receiver:
    """A real local HTTP server that records JSON bodies (and can be told to fail)."""

    def __init__(self, status: int = 200):
        self.bodies: list[dict] = []
        self.paths: list[str] = []
        self.status = status
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers["Content-Length"])
                receiver.paths.append(self.path)
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path="/hook"):
        return f"http://127.0.0.1:{self.server.server_port}{path}"


@pytest.fixture
def receiver(settings):
    # The receiver listens on loopback, which webhooks may reach only when allowed.
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True
    r = Receiver()
    yield r
    r.server.shutdown()


def webhook(receiver, fmt="generic", name="hook", path="/hook?token=SECRET-TOKEN"):
    return NotificationChannel.objects.create(
        name=name, kind="webhook", format=fmt, url=receiver.url(path)
    )


def test_fire_then_still_firing_then_resolve_notifies_twice(now, receiver):
    cost = rule("Daily cost")
    cost.channels.set([webhook(receiver)])
    day_row(local_day(now), cost="25")
    assert evaluate_rule(cost, now).action == "fired"
    assert evaluate_rule(cost, now + timedelta(minutes=1)).action == "still_firing"
    assert evaluate_rule(cost, now + timedelta(minutes=2)).action == "still_firing"
    assert [b["state"] for b in receiver.bodies] == ["firing"]
    CallRollup.objects.filter(period="day").update(cost_usd=Decimal("5"))
    assert evaluate_rule(cost, now + timedelta(minutes=3)).action == "resolved"
    assert [b["state"] for b in receiver.bodies] == ["firing", "resolved"]
    event = AlertEvent.objects.get()
    assert event.state == "resolved" and event.resolved_at == now + timedelta(minutes=3)
    assert event.value == Decimal("5")
    assert [n["state"] for n in event.notifications] == ["firing", "resolved"]
    first = receiver.bodies[0]
    assert first["rule"] == "Daily cost" and first["value"] == 25.0 and first["threshold"] == 10.0
    assert first["likely_cause"] == "Check for abuse."
    assert "/admin/analytics/aicall/dashboard/?start=" in first["dashboard_url"]
    # A new breach is a new event.
    CallRollup.objects.filter(period="day").update(cost_usd=Decimal("50"))
    assert evaluate_rule(cost, now + timedelta(minutes=4)).action == "fired"
    assert AlertEvent.objects.count() == 2


def test_cooldown_reminds_a_rule_that_stays_bad(now, receiver):
    cost = rule("Daily cost")
    cost.cooldown_minutes = 30
    cost.save()
    cost.channels.set([webhook(receiver)])
    day_row(local_day(now), cost="25")
    evaluate_rule(cost, now)
    assert evaluate_rule(cost, now + timedelta(minutes=29)).action == "still_firing"
    assert evaluate_rule(cost, now + timedelta(minutes=30)).action == "renotified"
    assert evaluate_rule(cost, now + timedelta(minutes=31)).action == "still_firing"
    assert [b["state"] for b in receiver.bodies] == ["firing", "still_firing"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrency test on PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_two_monitors_at_once_make_one_event_and_one_notification(now, receiver):
    # A transactional test: earlier ones may have flushed the seeded rules, so make its own.
    cost, _ = AlertRule.objects.get_or_create(
        name="Daily cost",
        defaults={"metric": "daily_cost_usd", "comparison": "gt", "threshold": Decimal("10")},
    )
    cost.channels.set([webhook(receiver)])
    day_row(local_day(now), cost="25")
    barrier = threading.Barrier(2)
    outcomes = []

    def monitor():
        from django.db import connection as thread_connection

        try:
            barrier.wait()
            outcomes.append(evaluate_rule(AlertRule.objects.get(pk=cost.pk), now).action)
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=monitor) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["fired", "still_firing"]
    assert AlertEvent.objects.filter(state="firing").count() == 1
    assert len(receiver.bodies) == 1


# --- notification formats -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "check"),
    [
        ("generic", lambda b: b["state"] == "firing" and b["metric"] == "daily_cost_usd"),
        ("slack", lambda b: set(b) == {"text"} and "[FIRING] Daily cost" in b["text"]),
        (
            "feishu",
            lambda b: b["msg_type"] == "text" and "[FIRING] Daily cost" in b["content"]["text"],
        ),
        (
            "dingtalk",
            lambda b: b["msgtype"] == "text" and "Likely cause" in b["text"]["content"],
        ),
        (
            "wecom",
            lambda b: (
                b["msgtype"] == "text" and "$25.00 (fires when > $10.00)" in b["text"]["content"]
            ),
        ),
    ],
)
def test_webhook_formats(now, receiver, fmt, check):
    cost = rule("Daily cost")
    cost.channels.set([webhook(receiver, fmt)])
    day_row(local_day(now), cost="25")
    evaluate_rule(cost, now)
    assert len(receiver.bodies) == 1
    assert check(receiver.bodies[0]), receiver.bodies[0]
    assert receiver.paths == ["/hook?token=SECRET-TOKEN"]


def test_a_failing_webhook_is_retried_logged_without_its_secret_and_blocks_nothing(
    now, receiver, monkeypatch, caplog
):
    monkeypatch.setattr("analytics.alerts.notify.RETRY_DELAYS_SECONDS", (0.01, 0.01, 0.01))
    failing = Receiver(status=503)
    try:
        cost = rule("Daily cost")
        cost.channels.set(
            [
                webhook(failing, name="broken"),
                webhook(receiver, name="working", path="/ok"),
                NotificationChannel.objects.create(
                    name="mail", kind="email", recipients="ops@example.com"
                ),
            ]
        )
        day_row(local_day(now), cost="25")
        assert evaluate_rule(cost, now).action == "fired"
    finally:
        failing.server.shutdown()
    assert len(failing.bodies) == 4  # the first attempt and three retries
    assert len(receiver.bodies) == 1
    assert mail.outbox[0].to == ["ops@example.com"]
    results = {n["channel"]: n for n in AlertEvent.objects.get().notifications}
    assert results["broken"]["ok"] is False and results["broken"]["error"] == "HTTP 503"
    assert results["working"]["ok"] and results["mail"]["ok"]
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "broken" in logged and "SECRET-TOKEN" not in logged and "/hook" not in logged


def test_unreachable_webhook_fails_fast_and_cleanly(now, monkeypatch, settings):
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True  # so that it is the connection that fails
    monkeypatch.setattr("analytics.alerts.notify.RETRY_DELAYS_SECONDS", (0.01,))
    cost = rule("Daily cost")
    channel = NotificationChannel.objects.create(
        name="nowhere", kind="webhook", url="http://127.0.0.1:1/hook?key=SECRET"
    )
    cost.channels.set([channel])
    day_row(local_day(now), cost="25")
    assert evaluate_rule(cost, now).action == "fired"
    result = AlertEvent.objects.get().notifications[0]
    assert result["ok"] is False and "SECRET" not in result["error"]


def test_email_goes_to_staff_with_the_permission_by_default(now):
    make_user("boss", is_staff=True, is_superuser=True)
    make_user("customer")
    day_row(local_day(now), cost="25")
    evaluate_rule(rule("Daily cost"), now)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["boss@example.com"]
    assert message.subject == "[FIRING] Daily cost"
    assert "Daily cost (USD): $25.00 (fires when > $10.00)" in message.body
    assert "Likely cause: Check for abuse." in message.body


def test_test_alert_channels_reports_each_channel(receiver, capsys, monkeypatch):
    monkeypatch.setattr("analytics.alerts.notify.RETRY_DELAYS_SECONDS", ())
    make_user("boss", is_staff=True, is_superuser=True)
    webhook(receiver, "slack", name="slack")
    NotificationChannel.objects.create(
        name="dead", kind="webhook", url="http://127.0.0.1:1/x?token=SECRET"
    )
    with pytest.raises(Exception, match="1 of 3 channel"):
        call_command("test_alert_channels")
    out = capsys.readouterr().out
    assert "ok      slack" in out and "ok      Staff email" in out
    assert "FAILED  dead (http://127.0.0.1:1/…)" in out and "SECRET" not in out
    assert "[TEST]" in receiver.bodies[0]["text"]


def test_check_alerts_command_prints_each_rule(capsys):
    call_command("check_alerts")
    out = capsys.readouterr().out
    assert "Daily cost: no_data (no data)" in out
    assert out.count("\n") == 6


def test_day_boundaries_use_the_reporting_zone(now):
    start, end = day_bounds(local_day(now))
    assert start <= now < end
