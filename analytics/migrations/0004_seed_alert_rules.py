"""The five monitoring rules of the project's brief, enabled, with a staff email channel."""

from decimal import Decimal

from django.db import migrations

RULES = [
    # name, metric, comparison, threshold, likely cause
    ("AI call success rate", "success_rate", "lt", "0.95",
     "The API key expired or the quota ran out."),
    ("Average AI response time", "avg_latency_seconds", "gt", "10",
     "Switch to a faster model or add caching."),
    ("Daily tokens", "daily_tokens_ratio", "gt", "3",
     "Abnormal traffic, or the prompts grew."),
    ("Daily cost", "daily_cost_usd", "gt", "10", "Check for abuse."),
    ("HTTP error rate", "http_error_rate", "gt", "0.05",
     "Check the upstream API's status and the network."),
]  # fmt: skip


def seed(apps, schema_editor):
    AlertRule = apps.get_model("analytics", "AlertRule")
    NotificationChannel = apps.get_model("analytics", "NotificationChannel")
    email, _ = NotificationChannel.objects.get_or_create(
        name="Staff email", defaults={"kind": "email", "recipients": ""}
    )
    for name, metric, comparison, threshold, cause in RULES:
        rule, _ = AlertRule.objects.get_or_create(
            name=name,
            defaults={
                "metric": metric,
                "comparison": comparison,
                "threshold": Decimal(threshold),
                "likely_cause": cause,
            },
        )
        rule.channels.add(email)


def unseed(apps, schema_editor):
    apps.get_model("analytics", "AlertRule").objects.filter(name__in=[r[0] for r in RULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("analytics", "0003_alerts")]
    operations = [migrations.RunPython(seed, unseed)]
