"""The alert raised when `monitor` pauses an experiment whose treatment tripped a guardrail."""

from decimal import Decimal

from django.db import migrations

NAME = "Experiment guardrail"


def seed(apps, schema_editor):
    AlertRule = apps.get_model("analytics", "AlertRule")
    NotificationChannel = apps.get_model("analytics", "NotificationChannel")
    rule, _ = AlertRule.objects.get_or_create(
        name=NAME,
        defaults={
            "metric": "experiment_guardrail",
            "comparison": "gt",
            "threshold": Decimal(0),
            "window_minutes": 1440,
            "min_samples": 0,
            "likely_cause": "A canary treatment did worse than its control (errors or cost); "
            "it was paused. Compare the groups in the admin, then resume or roll back.",
        },
    )
    email = NotificationChannel.objects.filter(name="Staff email").first()
    if email is not None:
        rule.channels.add(email)


def unseed(apps, schema_editor):
    apps.get_model("analytics", "AlertRule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("analytics", "0007_alter_alertrule_metric")]
    operations = [migrations.RunPython(seed, unseed)]
