"""cost_report and rollup commands: formats, email, bad input; the daily email runs once."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from analytics.apps import DASHBOARD_GROUP
from analytics.jobs import send_daily_report_if_due
from analytics.rollups import rollup_range
from analytics.timezones import day_bounds, local_day

from .factories import make_call, make_price, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def yesterday():
    make_price(model="m1", inp="1000", cached=None, out="0")
    day = local_day(timezone.now()) - timedelta(days=1)
    start, _ = day_bounds(day)
    user = make_user("carol")
    for hours in (1, 2, 3):
        make_call(
            created_at=start + timedelta(hours=hours),
            model="m1",
            input_tokens=10,
            output_tokens=0,
            user=user,
        )
    make_call(created_at=start + timedelta(hours=4), model="no-price", user=user)
    rollup_range(start - timedelta(days=8), start + timedelta(days=1))
    return day


def run(*args) -> str:
    out = io.StringIO()
    call_command("cost_report", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_text_csv_and_json_give_the_same_numbers(yesterday):
    text = run()  # default: yesterday
    assert f"AI cost report for {yesterday.isoformat()}" in text
    assert "Total cost: $0.0300" in text
    assert "Unpriced calls (no price for their model): 1" in text
    rows = list(csv.DictReader(io.StringIO(run("--format", "csv"))))
    total = next(r for r in rows if r["section"] == "total")
    assert (
        total["cost_usd"] == "0.030000"
        and total["calls"] == "4"
        and total["day"] == yesterday.isoformat()
    )
    assert {r["key"] for r in rows if r["section"] == "model"} == {"m1", "no-price"}
    data = json.loads(run("--format", "json", "--date", yesterday.isoformat()))
    assert data["rows"][0]["cost_usd"] == "0.030000"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-13-01", "is not a date"),
        ("tomorrow", "is not a date"),
        ("2999-01-01", "in the future"),
    ],
)
def test_bad_dates_are_refused_with_exit_status_2(value, message):
    with pytest.raises(CommandError, match=message) as error:
        call_command("cost_report", "--date", value)
    assert error.value.returncode == 2


def test_bad_date_from_the_command_line_exits_2():
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "manage.py", "cost_report", "--date", "2026-02-30"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--date “2026-02-30” is not a date of the form YYYY-MM-DD." in result.stderr


def test_email_goes_to_staff_with_the_permission(yesterday):
    viewer = make_user("viewer", is_staff=True)
    viewer.groups.add(Group.objects.get(name=DASHBOARD_GROUP))
    make_user("staff-without", is_staff=True)
    make_user("customer")
    make_user("boss", is_staff=True, is_superuser=True)
    run("--email")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert sorted(message.to) == ["boss@example.com", "viewer@example.com"]
    assert "Total cost: $0.0300" in message.body
    name, content, mimetype = message.attachments[0]
    assert name == f"ai-cost-report-{yesterday.isoformat()}.csv" and mimetype == "text/csv"
    assert "total,total,4," in content


def test_the_daily_email_is_sent_once_even_by_two_monitors(yesterday, settings):
    make_user("boss", is_staff=True, is_superuser=True)
    settings.COST_REPORT_HOUR = 0
    now = timezone.now()
    first = send_daily_report_if_due(now)
    second = send_daily_report_if_due(now + timedelta(minutes=1))
    assert first == ["boss@example.com"]
    assert second is None
    assert len(mail.outbox) == 1


def test_rollup_command_rejects_an_inverted_range():
    with pytest.raises(CommandError, match="--since is after --until"):
        call_command("rollup", "--since", "2026-01-05", "--until", "2026-01-01")


def test_csv_defuses_spreadsheet_formulas(yesterday):
    from analytics.models import AICall
    from analytics.rollups import rollup_range

    start, _ = day_bounds(yesterday)
    make_call(created_at=start + timedelta(hours=5), model="=HYPERLINK(evil)", input_tokens=1)
    rollup_range(start, start + timedelta(days=1))
    rows = list(csv.DictReader(io.StringIO(run("--format", "csv"))))
    keys = {r["key"] for r in rows if r["section"] == "model"}
    assert "'=HYPERLINK(evil)" in keys
    assert AICall.objects.filter(model="=HYPERLINK(evil)").exists()


def test_the_text_report_counts_in_words_that_agree_with_the_number(yesterday):
    lines = run().splitlines()
    one = next(line for line in lines if line.strip().startswith("no-price"))
    three = next(line for line in lines if line.strip().startswith("m1"))
    assert " 1 call " in one and "calls" not in one
    assert " 3 calls " in three and " 30 tokens " in three
    # The columns stay aligned whatever the plural.
    assert one.index("call") == three.index("call")
    assert one.index("vs 7d") == three.index("vs 7d")
