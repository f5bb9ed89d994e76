"""``manage.py rollup --since DATE [--until DATE]``: rebuild the rollups of a range."""

from django.core.management.base import BaseCommand, CommandError

from analytics.rollups import raw_horizon, rollup_range
from analytics.timezones import day_bounds

from ._dates import parse_day, today


class Command(BaseCommand):
    help = "Rebuild the hourly and daily rollups from the raw AI calls of a range of days."

    def add_arguments(self, parser):
        parser.add_argument("--since", required=True, help="First day (YYYY-MM-DD), inclusive.")
        parser.add_argument("--until", help="Last day (YYYY-MM-DD), inclusive; default today.")

    def handle(self, *args, since, until, **options):
        first = parse_day(since, option="--since")
        last = parse_day(until, option="--until") if until else today()
        if first > last:
            raise CommandError("--since is after --until", returncode=2)
        start, _ = day_bounds(first)
        _, end = day_bounds(last)
        horizon = raw_horizon()
        if start < horizon:
            self.stderr.write(
                f"Note: raw calls before {horizon:%Y-%m-%d %H:%M} may have been deleted "
                "(ANALYTICS_RAW_RETENTION_DAYS); rollups of those days are kept as they are."
            )
        counts = rollup_range(start, end)
        self.stdout.write(
            f"Rolled up {first.isoformat()}..{last.isoformat()}: {counts['hours']} hourly rows, "
            f"{counts['days']} daily rows, {counts['user_days']} user-day rows."
        )
