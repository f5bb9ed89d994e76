"""Date arguments of the analytics commands: a clear error and exit status 2 when wrong."""

from datetime import date

from django.core.management.base import CommandError
from django.utils import timezone

from analytics.timezones import reporting_zone


def today() -> date:
    return timezone.localtime(timezone.now(), reporting_zone()).date()


def parse_day(value: str, *, option: str, allow_today: bool = True) -> date:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise CommandError(
            f"{option}: {value!r} is not a date in the form YYYY-MM-DD", returncode=2
        ) from None
    if day > today() or (day == today() and not allow_today):
        raise CommandError(
            f"{option}: {day.isoformat()} is in the future (today is {today().isoformat()} in "
            f"the reporting time zone)",
            returncode=2,
        )
    return day
