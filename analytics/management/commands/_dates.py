"""Date options of the analytics commands: a clear error and exit status 2 when wrong."""

from datetime import date

from django.core.management.base import CommandError

from analytics.dates import BadDay
from analytics.dates import parse_day as parse_date
from analytics.timezones import today


def parse_day(value: str, *, option: str) -> date:
    try:
        return parse_date(value, today=today(), what=option)
    except BadDay as exc:
        raise CommandError(str(exc), returncode=2) from None


__all__ = ["parse_day", "today"]
