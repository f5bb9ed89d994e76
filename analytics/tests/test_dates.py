"""The one parser of typed dates (query strings and command options). Pure: no database."""

from datetime import date

import pytest

from analytics.dates import BadDay, parse_day
from analytics.forms import DateRangeForm, ReportDayForm

TODAY = date(2026, 6, 15)


def test_a_day_up_to_today_is_read():
    assert parse_day(" 2026-06-15 ", today=TODAY) == TODAY
    assert parse_day("2000-01-01", today=TODAY) == date(2000, 1, 1)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("20260614", "The date “20260614” is not a date of the form YYYY-MM-DD."),
        ("2026-W24-1", "is not a date of the form YYYY-MM-DD."),
        ("2026-02-30", "is not a date of the form YYYY-MM-DD."),
        ("2026-06-16", "The date 2026-06-16 is in the future (today is 2026-06-15"),
        ("1999-12-31", "The date 1999-12-31 is before 2000-01-01."),
        ("x" * 100, f"“{'x' * 40}…”"),
    ],
)
def test_a_bad_day_says_why(value, message):
    with pytest.raises(BadDay) as error:
        parse_day(value, today=TODAY)
    assert message in str(error.value)


def test_the_range_form_defaults_and_refusals():
    assert DateRangeForm({}, today=TODAY).date_range().days == 30
    start_only = DateRangeForm({"start": "2026-06-01"}, today=TODAY).date_range()
    assert (start_only.start, start_only.end, start_only.error) == (date(2026, 6, 1), TODAY, "")
    end_only = DateRangeForm({"end": "2026-01-10"}, today=TODAY).date_range()
    assert (end_only.start, end_only.end) == (date(2025, 12, 12), date(2026, 1, 10))
    both_bad = DateRangeForm({"start": "soon", "end": "2999-01-01"}, today=TODAY).date_range()
    assert both_bad.error.startswith("The end date 2999-01-01 is in the future")
    assert "The start date “soon” is not a date" in both_bad.error
    assert both_bad.error.endswith("Showing the last 30 days instead.")
    assert (both_bad.start, both_bad.end) == (date(2026, 5, 17), TODAY)


def test_the_report_day_form():
    form = ReportDayForm({"day": ""}, today=TODAY)
    assert form.is_valid() and form.cleaned_data["day"] is None
    form = ReportDayForm({"day": "2026-06-16"}, today=TODAY)
    assert not form.is_valid() and "is in the future" in form.errors["day"][0]
