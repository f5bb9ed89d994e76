"""The date range of the dashboard and the day of the report, from the query string."""

from dataclasses import dataclass
from datetime import date, timedelta

from django import forms
from django.core.exceptions import ValidationError

from .dates import EARLIEST_DAY, BadDay, parse_day

DEFAULT_RANGE_DAYS = 30
MAX_RANGE_DAYS = 366


@dataclass(frozen=True)
class DateRange:
    start: date
    end: date
    error: str = ""

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def default_range(today: date, error: str = "") -> DateRange:
    return DateRange(today - timedelta(days=DEFAULT_RANGE_DAYS - 1), today, error)


class _DayField(forms.CharField):
    """A YYYY-MM-DD day, up to today; typed as text so the refusal can quote what was sent."""

    def __init__(self, *, what: str, **kwargs):
        self.what = what
        self.today: date | None = None
        super().__init__(required=False, **kwargs)

    def clean(self, value):
        text = super().clean(value)
        if not text:
            return None
        try:
            assert self.today is not None, "the form sets today on its fields"
            return parse_day(text, today=self.today, what=self.what)
        except BadDay as exc:
            raise ValidationError(str(exc), code="bad_day") from None


class _TodayForm(forms.Form):
    def __init__(self, data, *, today: date):
        super().__init__(data)
        self.today = today
        for field in self.fields.values():
            if isinstance(field, _DayField):
                field.today = today


class DateRangeForm(_TodayForm):
    """``start`` and ``end``, both inclusive; either may be left out (the end defaults to today,
    the start to 30 days before the end)."""

    start = _DayField(what="The start date")
    end = _DayField(what="The end date")

    def clean(self):
        data = super().clean() or {}
        if "start" not in data or "end" not in data:
            return data  # a field's own error says why
        end = data["end"] or self.today
        start = data["start"] or max(end - timedelta(days=DEFAULT_RANGE_DAYS - 1), EARLIEST_DAY)
        if start > end:
            raise ValidationError(
                f"The start date {start.isoformat()} is after the end date {end.isoformat()}."
            )
        if (end - start).days + 1 > MAX_RANGE_DAYS:
            raise ValidationError(f"The range is longer than {MAX_RANGE_DAYS} days.")
        data["start"], data["end"] = start, end
        return data

    def refusal(self) -> str:
        """Why the range cannot be used ("" when it can)."""
        if self.is_valid():
            return ""
        errors = [
            *self.errors.get("end", []),
            *self.errors.get("start", []),
            *self.non_field_errors(),
        ]
        return " ".join(str(e) for e in errors)

    def date_range(self) -> DateRange:
        """The range asked for, or the last 30 days with the reason in ``error``."""
        if refusal := self.refusal():
            fallback = f"Showing the last {DEFAULT_RANGE_DAYS} days instead."
            return default_range(self.today, f"{refusal} {fallback}")
        return DateRange(self.cleaned_data["start"], self.cleaned_data["end"])


class ReportDayForm(_TodayForm):
    day = _DayField(what="The date")
