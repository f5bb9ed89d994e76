"""Dates typed by people (query strings, command options): one parser, readable refusals."""

import re
from datetime import date

# Dates before this are refused: nothing was recorded then, and date arithmetic near year 1
# would overflow.
EARLIEST_DAY = date(2000, 1, 1)
ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class BadDay(ValueError):
    """A date that cannot be used; its message says why and is safe to show."""


def parse_day(value: str, *, today: date, what: str = "The date") -> date:
    """Return the YYYY-MM-DD ``value`` as a date, or raise BadDay with a readable message."""
    text = value.strip()
    try:
        if not ISO_DAY.fullmatch(text):
            raise ValueError(text)
        day = date.fromisoformat(text)
    except ValueError:
        shown = text if len(text) <= 40 else f"{text[:40]}…"
        raise BadDay(f"{what} “{shown}” is not a date of the form YYYY-MM-DD.") from None
    if day > today:
        raise BadDay(
            f"{what} {day.isoformat()} is in the future (today is {today.isoformat()} in the "
            "reporting time zone)."
        )
    if day < EARLIEST_DAY:
        raise BadDay(f"{what} {day.isoformat()} is before {EARLIEST_DAY.isoformat()}.")
    return day
