"""``manage.py test_alert_channels``: send a test message to every enabled channel."""

from datetime import timedelta
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from analytics.alerts.models import AlertEvent, AlertRule, NotificationChannel
from analytics.alerts.notify import AlertMessage, build_message, redacted, send_to


class Command(BaseCommand):
    help = "Send a test notification to every enabled alert channel and report each result."

    def handle(self, *args, **options):
        channels = list(NotificationChannel.objects.filter(enabled=True))
        if not channels:
            raise CommandError("No enabled notification channel is configured.")
        now = timezone.now()
        rule = AlertRule(
            name="Test notification",
            metric=AlertRule.Metric.DAILY_COST,
            comparison="gt",
            threshold=Decimal(10),
            likely_cause="This is a test from manage.py test_alert_channels.",
        )
        event = AlertEvent(
            rule=rule,
            value=Decimal(0),
            threshold=Decimal(10),
            samples=0,
            window_start=now - timedelta(hours=1),
            window_end=now,
            started_at=now,
        )
        base = build_message(event, "firing")
        title = f"[TEST] {rule.name}"
        message = AlertMessage(
            title, base.text.replace(base.title, title, 1), base.data | {"test": True}
        )
        failures = 0
        for channel in channels:
            result = send_to(channel, message)
            where = redacted(channel.url) if channel.url else "email"
            if result["ok"]:
                self.stdout.write(f"ok      {channel.name} ({where})")
            else:
                failures += 1
                self.stdout.write(f"FAILED  {channel.name} ({where}): {result['error']}")
        if failures:
            raise CommandError(f"{failures} of {len(channels)} channel(s) failed.")
