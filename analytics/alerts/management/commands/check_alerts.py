"""``manage.py check_alerts``: evaluate every enabled alert rule once (for cron)."""

from django.core.management.base import BaseCommand

from analytics.alerts.alerting import evaluate_all
from analytics.alerts.models import AlertRule
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
        rules = {rule.name: rule for rule in AlertRule.objects.all()}
        for outcome in evaluate_all():
            rule = rules.get(outcome.rule)
            if outcome.value is None:
                value = "no data"
            else:
                value = rule.format_value(outcome.value) if rule else f"{outcome.value:.4f}"
            self.stdout.write(f"{outcome.rule}: {outcome.action} ({value})")
