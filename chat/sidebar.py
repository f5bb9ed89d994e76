"""The sidebar's groups by date: pure functions, no Django (tested in test_sidebar.py)."""

from collections.abc import Callable, Iterable
from datetime import date

PINNED = "Pinned"
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)  # English, whatever the process's locale (calendar.month_name follows it)


def date_group(day: date, *, today: date) -> str:
    """Return the group of a conversation last active on ``day``: Today, Yesterday, Previous 7
    days, Previous 30 days, then its month ("November 2026")."""
    age = (today - day).days
    if age <= 0:  # today (or a clock a little ahead)
        return "Today"
    if age == 1:
        return "Yesterday"
    if age <= 7:
        return "Previous 7 days"
    if age <= 30:
        return "Previous 30 days"
    return f"{MONTHS[day.month - 1]} {day.year}"


def group_by_date[T](
    items: Iterable[T],
    *,
    today: date,
    day_of: Callable[[T], date],
    pinned: Callable[[T], bool],
) -> list[tuple[str, list[T]]]:
    """Return (label, items) in the items' order (newest first), pinned ones first in their own
    group."""
    items = list(items)
    groups: dict[str, list[T]] = {}
    for item in items:
        if pinned(item):
            groups.setdefault(PINNED, []).append(item)
    for item in items:
        if not pinned(item):
            groups.setdefault(date_group(day_of(item), today=today), []).append(item)
    return list(groups.items())
