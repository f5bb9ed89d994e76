"""Alerts in the admin: firing alerts on the index and dashboard, the event list, acknowledge."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from analytics.alerts.models import AlertEvent, AlertRule, NotificationChannel
from analytics.tests.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def boss(client):
    user = make_user("boss", is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


@pytest.fixture
def firing():
    now = timezone.now()
    return AlertEvent.objects.create(
        rule=AlertRule.objects.get(name="Daily cost"),
        value=Decimal("25"),
        threshold=Decimal("10"),
        samples=40,
        window_start=now - timedelta(hours=2),
        window_end=now,
        started_at=now,
    )


def test_firing_alerts_show_on_the_admin_index_and_dashboard(client, boss, firing):
    for url in (reverse("admin:index"), reverse("admin:analytics_dashboard")):
        page = client.get(url).content.decode()
        assert 'data-alert-rule="Daily cost"' in page, url
        assert "Check for abuse." in page
    AlertEvent.objects.filter(pk=firing.pk).update(state="resolved", resolved_at=timezone.now())
    page = client.get(reverse("admin:index")).content.decode()
    assert "No alert is firing." in page and "data-alert-rule" not in page


def test_acknowledge_action_records_who_and_when(client, boss, firing):
    url = reverse("admin:alerts_alertevent_changelist")
    response = client.post(url, {"action": "acknowledge", "_selected_action": [firing.pk]})
    assert response.status_code == 302
    firing.refresh_from_db()
    assert firing.acknowledged_by == boss and firing.acknowledged_at is not None
    listing = client.get(url + "?acknowledged=yes&state__exact=firing").content.decode()
    assert (
        "window on the dashboard" in listing
        and "/admin/analytics/aicall/dashboard/?start=" in listing
    )
    assert (
        client.get(url + "?acknowledged=no").content.decode().count("window on the dashboard") == 0
    )


def test_channel_list_never_shows_a_webhook_token(client, boss):
    NotificationChannel.objects.create(
        name="slack",
        kind="webhook",
        format="slack",
        url="https://hooks.slack.com/services/T000/B000/SECRETTOKEN",
    )
    page = client.get(reverse("admin:alerts_notificationchannel_changelist")).content.decode()
    assert "https://hooks.slack.com/…" in page and "SECRETTOKEN" not in page


def test_rules_are_editable_in_the_admin(client, boss):
    rule = AlertRule.objects.get(name="Daily cost")
    page = client.get(reverse("admin:alerts_alertrule_change", args=[rule.pk]))
    assert page.status_code == 200
    listing = client.get(reverse("admin:alerts_alertrule_changelist")).content.decode()
    assert "&gt; $10.00" in listing and "&lt; 95%" in listing
