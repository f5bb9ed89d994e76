"""``manage.py cost_report [--date YYYY-MM-DD] [--format text|csv|json] [--email]``."""

from datetime import timedelta

from django.core.management.base import BaseCommand

from analytics.reports import report_csv, report_json, report_text
from analytics.selectors import daily_report
from analytics.services import email_cost_report

from ._dates import parse_day, today

FORMATS = {"text": report_text, "csv": report_csv, "json": report_json}


class Command(BaseCommand):
    help = "Print (or email) the AI cost report of one day (default: yesterday)."

    def add_arguments(self, parser):
        parser.add_argument("--date", help="The day (YYYY-MM-DD); default yesterday.")
        parser.add_argument("--format", choices=sorted(FORMATS), default="text")
        parser.add_argument(
            "--email",
            action="store_true",
            help="Email it to the staff with the dashboard permission.",
        )

    def handle(self, *args, date, format, email, **options):
        day = parse_day(date, option="--date") if date else today() - timedelta(days=1)
        report = daily_report(day)
        if email:
            sent_to = email_cost_report(report)
            self.stderr.write(
                f"Sent the report of {day.isoformat()} to {len(sent_to)} recipient(s)."
            )
        self.stdout.write(FORMATS[format](report), ending="")
