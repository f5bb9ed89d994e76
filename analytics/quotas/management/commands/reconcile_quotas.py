"""``manage.py reconcile_quotas``: raise today's and this month's Redis quota counters to the
recorded usage (after an upgrade that renamed the keys, or any time a counter missed charges)."""

from django.core.management.base import BaseCommand

from analytics.quotas import reconcile_counters


class Command(BaseCommand):
    help = (
        "Raise each existing Redis quota counter of today and this month that is below the "
        "recorded usage of its period (plus its open reservations) to it; never lowers one."
    )

    def handle(self, *args, **options):
        raised = reconcile_counters()
        self.stdout.write(f"Raised {raised} quota counters to the recorded usage.")
