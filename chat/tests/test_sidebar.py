"""chat.sidebar without a database: the groups by date."""

from datetime import date

from chat.sidebar import date_group, group_by_date

TODAY = date(2026, 12, 5)


def test_date_groups():
    assert date_group(date(2026, 12, 5), today=TODAY) == "Today"
    assert date_group(date(2026, 12, 6), today=TODAY) == "Today"  # a clock ahead
    assert date_group(date(2026, 12, 4), today=TODAY) == "Yesterday"
    assert date_group(date(2026, 12, 3), today=TODAY) == "Previous 7 days"
    assert date_group(date(2026, 11, 28), today=TODAY) == "Previous 7 days"
    assert date_group(date(2026, 11, 27), today=TODAY) == "Previous 30 days"
    assert date_group(date(2026, 11, 5), today=TODAY) == "Previous 30 days"
    assert date_group(date(2026, 11, 4), today=TODAY) == "November 2026"
    assert date_group(date(2025, 12, 25), today=TODAY) == "December 2025"


def test_pinned_first_then_by_date_in_the_given_order():
    items = [
        ("a", date(2026, 12, 5), False),
        ("b", date(2026, 12, 4), True),
        ("c", date(2026, 12, 4), False),
        ("d", date(2026, 10, 1), False),
        ("e", date(2026, 9, 30), True),
        ("f", date(2026, 9, 2), False),
    ]
    groups = group_by_date(items, today=TODAY, day_of=lambda i: i[1], pinned=lambda i: i[2])
    assert [(label, [i[0] for i in members]) for label, members in groups] == [
        ("Pinned", ["b", "e"]),
        ("Today", ["a"]),
        ("Yesterday", ["c"]),
        ("October 2026", ["d"]),
        ("September 2026", ["f"]),
    ]
    assert group_by_date([], today=TODAY, day_of=lambda i: i, pinned=lambda i: False) == []
