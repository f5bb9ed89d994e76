"""The reporting time zone: days in reports, rollups and quotas are counted in it."""

from datetime import date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone


@cache
def reporting_zone() -> ZoneInfo:
    return ZoneInfo(settings.REPORTING_TIME_ZONE)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """Return the aware start and end of ``day`` in the reporting zone."""
    zone = reporting_zone()
    start = datetime.combine(day, time.min, tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone)
    return start, end


def month_bounds(day: date) -> tuple[datetime, datetime]:
    """Return the aware start and end of the month of ``day`` in the reporting zone."""
    zone = reporting_zone()
    start = datetime(day.year, day.month, 1, tzinfo=zone)
    end = datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=zone)
    return start, end


def local_day(moment: datetime) -> date:
    return moment.astimezone(reporting_zone()).date()


def today() -> date:
    """Return today's date in the reporting zone."""
    return local_day(timezone.now())
