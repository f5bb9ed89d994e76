"""``manage.py check_alerts``: evaluate every enabled alert rule once (for cron)."""

from django.core.management.base import BaseCommand

from analytics.alerts.alerting import evaluate_all
from analytics.rollups import rollup_recent


class Command(BaseCommand):
    help = "Evaluate the alert rules once; fire, remind or resolve, and notify."

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-rollup", action="store_true", help="Do not bring the rollups up to date first."
        )

    def handle(self, *args, no_rollup=False, **options):
        if not no_rollup:
            rollup_recent()
        for outcome in evaluate_all():
            value = "no data" if outcome.value is None else f"{outcome.value:.4f}"
            self.stdout.write(f"{outcome.rule}: {outcome.action} ({value})")
