"""The alert and quota models moved to their own apps (``alerts``, ``quotas``).

State only: the tables stay as they are (the new apps' models name them with ``db_table``), so
no row is copied. The new apps' first migrations, which depend on this one, add the models back
to Django's state under their labels and relabel their content types.
"""

from django.db import migrations

MOVED = [
    # Referencing models first: an AlertEvent points at its AlertRule, which points at channels.
    "AlertEvent",
    "AlertRule",
    "NotificationChannel",
    "UsageQuota",
    "QuotaEvent",
    "QuotaCounter",
    "QuotaReservation",
]


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0009_quotas"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name) for name in MOVED],
            database_operations=[],
        )
    ]
