"""The admin side of analytics: the dashboard, the daily cost report, the AI call changelist.

Calls are seeded with explicit times, rolled up with ``rollup_range``, and every number the pages
show is checked against an aggregate computed straight from the raw ``AICall`` rows.
"""

import csv
import io
import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group
from django.db.models import Count, Q, Sum
from django.urls import reverse
from django.utils import timezone

from analytics.apps import DASHBOARD_GROUP
from analytics.models import AICall, ModelPrice
from analytics.rollups import rollup_range
from analytics.timezones import day_bounds, local_day

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("admin:analytics_dashboard")
REPORT = reverse("admin:analytics_report")
CHANGELIST = reverse("admin:analytics_aicall_changelist")
FAILED = ("error", "timeout", "rate_limited")
UNPRICED_MODEL = "mystery-llm"  # no ModelPrice row matches it


# --- Reading the pages ---------------------------------------------------------------------


class Hooks(HTMLParser):
    """Collects the text of the pages' data-* hooks.

    ``tables[table][row key][column]``, ``metrics[metric][value]``, ``summary[name]`` and
    ``errors[name]``; a hook's text leaves out the text of hooks nested in it.
    """

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "wbr"}

    def __init__(self, html: str):
        super().__init__()
        self.tables: dict[str, dict[str, dict[str, str]]] = {}
        self.metrics: dict[str, dict[str, str]] = {}
        self.summary: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self._open: list[tuple[str, tuple | None, str | None]] = []  # tag, capture, scope
        self._table = self._row = self._metric = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        capture = scope = None
        if "data-table" in a:
            self._table = self.tables.setdefault(a["data-table"], {})
            scope = "table"
        elif "data-key" in a and self._table is not None:
            self._row = self._table.setdefault(a["data-key"], {})
            scope = "row"
        elif "data-metric" in a:
            self._metric = self.metrics.setdefault(a["data-metric"], {})
            scope = "metric"
        if "data-col" in a and self._row is not None:
            capture = (self._row, a["data-col"], [])
        elif "data-value" in a and self._metric is not None:
            capture = (self._metric, a["data-value"], [])
        elif "data-summary" in a:
            capture = (self.summary, a["data-summary"], [])
        elif "data-error" in a:
            capture = (self.errors, a["data-error"], [])
        if tag not in self.VOID:
            self._open.append((tag, capture, scope))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        while self._open:
            open_tag, capture, scope = self._open.pop()
            if capture is not None:
                target, name, parts = capture
                target[name] = " ".join("".join(parts).split())
            if scope == "table":
                self._table = None
            elif scope == "row":
                self._row = None
            elif scope == "metric":
                self._metric = None
            if open_tag == tag:
                break

    def handle_data(self, data):
        for _, capture, _ in reversed(self._open):
            if capture is not None:
                capture[2].append(data)
                break


def hooks(response) -> Hooks:
    return Hooks(response.content.decode())


def money(value) -> str:
    """The pages' money format, written out independently of the code under test."""
    value = Decimal(value)
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def percent(ratio: float) -> str:
    return f"{ratio * 100:.1f}%"


# --- Data ----------------------------------------------------------------------------------


def today() -> date:
    return local_day(timezone.now())


def moment(day: date, hour: int) -> datetime:
    """A time on ``day``; on today, a time between midnight and now (never in the future)."""
    start, _ = day_bounds(day)
    if day == today():
        return start + (timezone.now() - start) * hour / 24
    return start + timedelta(hours=hour, minutes=7)


_request_ids = iter(range(1, 1_000_000))


def call(day, user, model, *, status="ok", cost="0.001", hour=10, **fields) -> AICall:
    defaults = {
        "task_type": "chat",
        "variant": "",
        "input_tokens": 100,
        "output_tokens": 40,
        "latency_ms": 800,
        "ttft_ms": 250,
    }
    defaults.update(fields)
    defaults["total_tokens"] = defaults["input_tokens"] + defaults["output_tokens"]
    return AICall.objects.create(
        user=user,
        model=model,
        status=status,
        error_code="" if status == "ok" else f"upstream_{status}",
        cost_usd=None if cost is None else Decimal(cost),
        request_id=f"req-{next(_request_ids):06d}",
        created_at=moment(day, hour),
        **defaults,
    )


def roll_up(first_day: date) -> None:
    rollup_range(day_bounds(first_day)[0], day_bounds(today())[1])


@pytest.fixture
def people(django_user_model):
    make = django_user_model.objects.create_user
    return {
        "alice": make("alice", email="alice@example.com", password="x-pass-123456"),
        "bob": make("bob", email="bob@example.com", password="x-pass-123456"),
        "carol": make("carol", email="carol@example.com", password="x-pass-123456"),
    }


@pytest.fixture
def seeded(people):
    """Nine days of calls: today, yesterday (the report's day) and seven days before it, one of
    which (4 days before yesterday) has no calls."""
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    t = today()
    y = t - timedelta(days=1)

    # Today: errors of three kinds, a cancelled call, unpriced calls, a call without a user.
    call(t, alice, "gpt-4o", cost="0.0125", input_tokens=1000, output_tokens=500, latency_ms=1200)
    call(t, alice, "gpt-4o-mini", status="error", cost="0.0001", latency_ms=5000, ttft_ms=None)
    call(t, bob, "gpt-4o-mini", task_type="title", variant="canary-b", cost="0.0003")
    call(t, bob, UNPRICED_MODEL, cost=None, input_tokens=300, output_tokens=120)
    call(t, None, "gpt-4o-mini", status="timeout", cost="0.0002", latency_ms=30000, ttft_ms=None)
    call(t, carol, UNPRICED_MODEL, status="cancelled", cost=None, latency_ms=400)

    # Yesterday: carol spends the most, bob has unpriced calls, one call is rate limited.
    for hour in (8, 9, 10):
        call(y, alice, "gpt-4o", cost="0.02", hour=hour, input_tokens=2000, output_tokens=300)
    for hour in (11, 12):
        call(y, bob, "gpt-4o-mini", cost="0.0015", hour=hour, variant="canary-b")
    call(y, carol, "gpt-4o", cost="0.5", task_type="summary", input_tokens=90_000)
    call(y, bob, UNPRICED_MODEL, cost=None, hour=13)
    call(y, bob, UNPRICED_MODEL, cost=None, hour=14, task_type="title")
    call(y, alice, "gpt-4o-mini", status="rate_limited", cost="0", hour=15, input_tokens=0,
         output_tokens=0, ttft_ms=None)  # fmt: skip

    # The trailing week of yesterday, with a gap.
    for back in range(2, 9):
        if back == 5:
            continue
        day = t - timedelta(days=back)
        call(day, alice, "gpt-4o", cost=f"0.0{back}", input_tokens=500 * back)
        call(day, bob, "gpt-4o-mini", cost="0.001", variant="canary-b" if back % 2 else "")

    roll_up(t - timedelta(days=10))
    return {"today": t, "yesterday": y, **people}


def calls_on(day: date):
    return AICall.objects.between(*day_bounds(day))


def calls_between(first: date, last: date):
    return AICall.objects.between(day_bounds(first)[0], day_bounds(last)[1])


def cost_sum(queryset) -> Decimal:
    return queryset.aggregate(s=Sum("cost_usd"))["s"] or Decimal(0)


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "x-pass-123456")


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


def assert_csp_clean(html: str) -> None:
    """The site's CSP forbids inline scripts, style attributes and inline event handlers."""
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert not re.search(r"<style\b", html)
    assert " style=" not in html
    assert not re.search(r"\son[a-z]+\s*=", html)


# --- Access ----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [DASHBOARD, REPORT, REPORT + "?format=csv"])
def test_superuser_gets_the_pages(admin_client, seeded, url):
    assert admin_client.get(url).status_code == 200


@pytest.mark.parametrize("url", [DASHBOARD, REPORT, REPORT + "?format=csv"])
def test_staff_without_the_permission_gets_403(client, django_user_model, url):
    staff = django_user_model.objects.create_user(
        "staffer", password="x-pass-123456", is_staff=True
    )
    client.force_login(staff)
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("url", [DASHBOARD, REPORT])
def test_staff_in_the_viewers_group_gets_the_pages(client, django_user_model, seeded, url):
    viewer = django_user_model.objects.create_user(
        "viewer", password="x-pass-123456", is_staff=True
    )
    viewer.groups.add(Group.objects.get(name=DASHBOARD_GROUP))
    client.force_login(viewer)
    response = client.get(url)
    assert response.status_code == 200
    # The group also lets them read the raw calls, but not change prices.
    assert client.get(CHANGELIST).status_code == 200
    assert client.get(reverse("admin:analytics_modelprice_add")).status_code == 403


@pytest.mark.parametrize("url", [DASHBOARD, REPORT, REPORT + "?format=csv"])
def test_non_staff_and_anonymous_users_are_sent_to_the_admin_login(client, people, url):
    login = reverse("admin:login")
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith(login)
    client.force_login(people["alice"])
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith(login)


def test_admin_home_shows_the_ai_usage_box_only_with_the_permission(
    client, admin_client, django_user_model
):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert f'href="{DASHBOARD}"' in html and f'href="{REPORT}"' in html
    assert "Firing alerts" in html and "No alert is firing." in html
    assert_csp_clean(html)

    client.logout()
    staff = django_user_model.objects.create_user(
        "staffer", password="x-pass-123456", is_staff=True
    )
    client.force_login(staff)
    html = client.get(reverse("admin:index")).content.decode()
    assert DASHBOARD not in html and "Firing alerts" not in html


# --- The dashboard ---------------------------------------------------------------------------


def test_dashboard_today_and_yesterday_match_the_raw_calls(admin_client, seeded):
    response = admin_client.get(DASHBOARD)
    page = hooks(response)
    for which, day in (("today", seeded["today"]), ("yesterday", seeded["yesterday"])):
        calls = calls_on(day)
        n = calls.count()
        failed = calls.filter(status__in=FAILED).count()
        sums = calls.aggregate(
            i=Sum("input_tokens"), o=Sum("output_tokens"), latency=Sum("latency_ms")
        )
        unpriced = calls.filter(cost_usd__isnull=True).count()
        assert page.metrics["calls"][which] == f"{n:,}"
        assert page.metrics["success_rate"][which] == percent((n - failed) / n)
        assert page.metrics["avg_latency"][which] == f"{sums['latency'] / n:,.0f} ms"
        assert page.metrics["tokens"][which] == f"{sums['i'] + sums['o']:,}"
        assert page.metrics["cost"][which] == money(cost_sum(calls))
        assert unpriced > 0
        assert page.metrics["cost"][f"{which}-note"] == f"{unpriced} unpriced"
    # Today has 6 calls, 2 failed (the cancelled one is not a failure).
    assert page.metrics["calls"]["today"] == "6"
    assert page.metrics["success_rate"]["today"] == "66.7%"
    assert page.metrics["cost"]["today"] == "$0.0131"
    assert_csp_clean(response.content.decode())


def test_dashboard_range_tables_match_the_raw_calls(admin_client, seeded):
    t = seeded["today"]
    first = t - timedelta(days=29)
    page = hooks(admin_client.get(DASHBOARD))
    in_range = calls_between(first, t)

    assert page.summary["calls"] == f"{in_range.count():,}"
    assert page.summary["cost"] == money(cost_sum(in_range))
    unpriced = in_range.filter(cost_usd__isnull=True).count()
    assert page.summary["unpriced"] == f"+ {unpriced} unpriced"

    models = page.tables["model"]
    assert set(models) == set(in_range.values_list("model", flat=True))
    for model, row in models.items():
        of_model = in_range.filter(model=model)
        n = of_model.count()
        assert row["calls"] == f"{n:,}"
        assert row["error_rate"] == percent(of_model.filter(status__in=FAILED).count() / n)
    gpt4o = in_range.filter(model="gpt-4o")
    assert models["gpt-4o"]["cost"] == money(cost_sum(gpt4o))
    assert models["gpt-4o"]["cost_per_call"] == money(cost_sum(gpt4o) / gpt4o.count())
    # A model without a price is not shown as free.
    mystery = in_range.filter(model=UNPRICED_MODEL).count()
    assert models[UNPRICED_MODEL]["cost"] == "n/a"
    assert models[UNPRICED_MODEL]["cost_per_call"] == "—"
    assert models[UNPRICED_MODEL]["unpriced"] == f"{mystery} unpriced"

    assert page.tables["task_type"]["title"]["calls"] == str(
        in_range.filter(task_type="title").count()
    )
    # Cost per call divides by the priced calls: unpriced ones would drag it down.
    chat = in_range.filter(task_type="chat")
    priced = chat.filter(cost_usd__isnull=False).count()
    assert priced < chat.count()
    assert page.tables["task_type"]["chat"]["cost_per_call"] == money(cost_sum(chat) / priced)
    assert page.tables["variant"][""]["calls"] == str(in_range.filter(variant="").count())
    assert page.tables["variant"]["canary-b"]["cost"] == money(
        cost_sum(in_range.filter(variant="canary-b"))
    )

    per_user = list(
        in_range.filter(user__isnull=False)
        .values("user__username")
        .annotate(cost=Sum("cost_usd"), n=Count("id"))
        .order_by("-cost")
    )
    users = page.tables["user"]
    assert list(users) == [u["user__username"] for u in per_user]
    top = per_user[0]
    assert users[top["user__username"]]["rank"] == "1"
    assert users[top["user__username"]]["cost"] == money(top["cost"])
    assert users[top["user__username"]]["calls"] == str(top["n"])


def test_dashboard_charts_are_inline_svg(admin_client, seeded):
    html = admin_client.get(DASHBOARD).content.decode()
    for key in ("cost", "calls", "latency", "tokens"):
        assert f'data-chart="{key}"' in html
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" class="chart"') == 4
    # The cost chart's legend names the priced models; unpriced ones are left out, and said so.
    cost_chart = html.split('data-chart="cost"')[1].split("</figure>")[0]
    assert ">gpt-4o<" in cost_chart and ">gpt-4o-mini<" in cost_chart
    assert UNPRICED_MODEL not in cost_chart and "unpriced calls" in cost_chart


def test_dashboard_escapes_what_the_calls_carry(admin_client, people):
    name = "<script>alert(1)</script>"
    call(today(), people["alice"], name, cost="0.5", variant='"><b>x</b>')
    roll_up(today())
    html = admin_client.get(DASHBOARD).content.decode()
    assert "<script>alert(1)" not in html and "<b>x</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert_csp_clean(html)


def test_dashboard_summary_counts_in_words_that_agree_with_the_number(admin_client, people):
    call(today(), people["alice"], "gpt-4o", input_tokens=1, output_tokens=0)
    roll_up(today())
    text = " ".join(admin_client.get(DASHBOARD).content.decode().split())
    assert '<span data-summary="calls">1</span> call,' in text
    assert '<span data-summary="tokens">1</span> token,' in text
    assert "which the monitor refreshes every minute;" in text


def test_dashboard_says_how_often_the_rollups_refresh(admin_client, settings):
    settings.ANALYTICS_ROLLUP_SECONDS = 15.0  # make run's
    text = " ".join(admin_client.get(DASHBOARD).content.decode().split())
    assert "which the monitor refreshes every 15 seconds;" in text


def test_dashboard_with_a_custom_range(admin_client, seeded):
    t = seeded["today"]
    first, last = t - timedelta(days=8), t - timedelta(days=2)
    response = admin_client.get(DASHBOARD, {"start": first.isoformat(), "end": last.isoformat()})
    page = hooks(response)
    assert not page.errors
    assert page.summary["calls"] == str(calls_between(first, last).count())
    assert page.summary["cost"] == money(cost_sum(calls_between(first, last)))
    assert response.context["range"].days == 7


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"start": "yesterday"}, "is not a date of the form YYYY-MM-DD"),
        ({"start": "2024-02-30", "end": "2024-03-01"}, "is not a date of the form YYYY-MM-DD"),
        ({"start": "2024-W01-1"}, "is not a date of the form YYYY-MM-DD"),
        ({"start": "2024-03-10", "end": "2024-03-01"}, "is after the end date"),
        ({"start": "2023-01-01", "end": "2024-06-01"}, "longer than 366 days"),
        ({"end": "2999-01-01"}, "is in the future"),
        ({"start": "0001-01-01", "end": "0001-01-05"}, "is before 2000-01-01"),
    ],
)
def test_dashboard_bad_ranges_show_an_error_and_the_default(admin_client, seeded, params, message):
    response = admin_client.get(DASHBOARD, params)
    assert response.status_code == 200
    page = hooks(response)
    assert message in page.errors["range"]
    assert "Showing the last 30 days instead" in page.errors["range"]
    t = seeded["today"]
    assert page.summary["calls"] == str(calls_between(t - timedelta(days=29), t).count())


def test_dashboard_without_any_calls(admin_client):
    response = admin_client.get(DASHBOARD)
    assert response.status_code == 200
    page = hooks(response)
    assert page.metrics["calls"]["today"] == "0"
    assert page.metrics["success_rate"]["today"] == "—"
    assert page.metrics["cost"]["today"] == "$0.0000"
    assert "No calls in this range." in response.content.decode()


# --- The daily report ------------------------------------------------------------------------


def test_report_defaults_to_yesterday_and_matches_the_raw_calls(admin_client, seeded):
    y = seeded["yesterday"]
    response = admin_client.get(REPORT)
    assert response.status_code == 200
    page = hooks(response)
    on_day = calls_on(y)
    trailing = calls_between(y - timedelta(days=7), y - timedelta(days=1))

    total = page.tables["total"]
    assert total["calls"]["day"] == str(on_day.count())
    assert total["cost"]["day"] == money(cost_sum(on_day))
    assert total["cost"]["unpriced"] == f"{on_day.filter(cost_usd__isnull=True).count()} unpriced"
    average = (cost_sum(trailing) / 7).quantize(Decimal("0.000001"))
    assert total["cost"]["avg"] == money(average)
    change = (cost_sum(on_day) - average) / average
    assert total["cost"]["change"] == f"{float(change):+.0%}"
    assert total["calls"]["avg"] == f"{trailing.count() / 7:,.1f}"

    by_model = page.tables["model"]
    for model in ("gpt-4o", "gpt-4o-mini"):
        assert by_model[model]["cost"] == money(cost_sum(on_day.filter(model=model)))
        assert by_model[model]["avg_cost"] == money(
            (cost_sum(trailing.filter(model=model)) / 7).quantize(Decimal("0.000001"))
        )
    assert by_model[UNPRICED_MODEL]["cost"] == "n/a"
    assert by_model[UNPRICED_MODEL]["calls"] == "2"

    by_user = page.tables["user"]
    top = (
        on_day.filter(user__isnull=False)
        .values("user__username")
        .annotate(cost=Sum("cost_usd"))
        .order_by("-cost")
        .first()
    )
    assert top["user__username"] == "carol"
    assert next(iter(by_user)) == "carol"
    assert by_user["carol"]["cost"] == money(top["cost"])
    assert by_user["alice"]["calls"] == str(on_day.filter(user=seeded["alice"]).count())

    assert set(page.tables["variant"]) == {"", "canary-b"}
    assert set(page.tables["task_type"]) >= {"chat", "summary", "title"}
    html = response.content.decode()
    assert "Only 6 of the previous 7 days had calls" in html
    assert f"?day={y.isoformat()}&amp;format=csv" in html
    assert_csp_clean(html)


def test_report_of_a_chosen_day(admin_client, seeded):
    day = seeded["today"] - timedelta(days=3)
    page = hooks(admin_client.get(REPORT, {"day": day.isoformat()}))
    assert page.tables["total"]["cost"]["day"] == money(cost_sum(calls_on(day)))
    assert page.tables["total"]["calls"]["day"] == str(calls_on(day).count())


def test_report_csv_download(admin_client, seeded):
    y = seeded["yesterday"]
    response = admin_client.get(REPORT, {"format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="ai-cost-report-{y.isoformat()}.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    total = next(r for r in rows if r["section"] == "total")
    assert total["day"] == y.isoformat()
    assert Decimal(total["cost_usd"]) == cost_sum(calls_on(y))
    assert int(total["calls"]) == calls_on(y).count()
    assert int(total["unpriced_calls"]) == calls_on(y).filter(cost_usd__isnull=True).count()
    models = {r["key"]: r for r in rows if r["section"] == "model"}
    assert Decimal(models["gpt-4o"]["cost_usd"]) == cost_sum(calls_on(y).filter(model="gpt-4o"))


def test_report_csv_of_a_chosen_day(admin_client, seeded):
    day = seeded["today"] - timedelta(days=4)
    response = admin_client.get(REPORT, {"day": day.isoformat(), "format": "csv"})
    assert f'filename="ai-cost-report-{day.isoformat()}.csv"' in response["Content-Disposition"]
    total = next(csv.DictReader(io.StringIO(response.content.decode())))
    assert Decimal(total["cost_usd"]) == cost_sum(calls_on(day))


@pytest.mark.parametrize(
    ("day", "message"),
    [
        ("31-12-2024", "is not a date of the form YYYY-MM-DD"),
        ("2024-13-01", "is not a date of the form YYYY-MM-DD"),
        ("<script>", "is not a date of the form YYYY-MM-DD"),
        ("2999-01-01", "is in the future"),
        ("0001-01-01", "is before 2000-01-01"),
        ("9" * 5000, "is not a date of the form YYYY-MM-DD"),
    ],
)
@pytest.mark.parametrize("fmt", ["", "csv"])
def test_report_bad_day_is_a_400_with_the_reason(admin_client, day, message, fmt):
    response = admin_client.get(REPORT, {"day": day, "format": fmt})
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    page = hooks(response)
    assert message in page.errors["day"]
    html = response.content.decode()
    assert "<script>" not in html.split('data-error="day"')[1]


def test_report_of_tomorrow_is_refused_but_today_is_allowed(admin_client, seeded):
    t = seeded["today"]
    tomorrow = admin_client.get(REPORT, {"day": (t + timedelta(days=1)).isoformat()})
    assert tomorrow.status_code == 400
    response = admin_client.get(REPORT, {"day": t.isoformat()})
    assert response.status_code == 200
    assert hooks(response).tables["total"]["calls"]["day"] == str(calls_on(t).count())
    assert "today, so far" in response.content.decode()


def test_report_without_history_says_so(admin_client, people):
    y = today() - timedelta(days=1)
    call(y, people["alice"], "gpt-4o", cost="0.25")
    roll_up(y)
    response = admin_client.get(REPORT)
    page = hooks(response)
    assert page.tables["total"]["cost"]["day"] == "$0.2500"
    assert page.tables["total"]["cost"]["avg"] == "$0.0000"
    assert page.tables["total"]["cost"]["change"] == "new"
    assert "Only 0 of the previous 7 days had calls" in response.content.decode()


# --- The AI call changelist -------------------------------------------------------------------


def result_count(response) -> int:
    assert response.status_code == 200
    return response.context["cl"].result_count


def test_changelist_filters_and_search(admin_client, seeded):
    assert result_count(admin_client.get(CHANGELIST)) == AICall.objects.count()
    cases = [
        ({"status__exact": "error"}, Q(status="error")),
        ({"model": UNPRICED_MODEL}, Q(model=UNPRICED_MODEL)),
        ({"task_type": "title"}, Q(task_type="title")),
        ({"variant": "__none__"}, Q(variant="")),
        (
            {"variant": "canary-b", "model": "gpt-4o-mini"},
            Q(variant="canary-b", model="gpt-4o-mini"),
        ),
        ({"is_demo__exact": "0"}, Q(is_demo=False)),
        ({"tokens_estimated__exact": "1"}, Q(tokens_estimated=True)),
        ({"q": "alice"}, Q(user__username="alice")),
        ({"q": "BOB@example.com"}, Q(user__email="bob@example.com")),
        ({"q": "req-nope"}, Q(pk__in=[])),
        ({"user__id__exact": seeded["carol"].pk}, Q(user=seeded["carol"])),
        (
            {"created_at__year": seeded["yesterday"].year},
            Q(created_at__year=seeded["yesterday"].year),
        ),
    ]
    for params, expected in cases:
        assert (
            result_count(admin_client.get(CHANGELIST, params))
            == AICall.objects.filter(expected).count()
        ), params
    some = AICall.objects.filter(cost_usd__isnull=True).first()
    response = admin_client.get(CHANGELIST, {"q": some.request_id})
    assert result_count(response) == 1
    assert "unpriced" in response.content.decode()


def test_changelist_filter_choices_and_links(admin_client, seeded):
    html = admin_client.get(CHANGELIST).content.decode()
    assert f"?model={UNPRICED_MODEL}" in html
    assert "?variant=__none__" in html
    assert f'href="{DASHBOARD}"' in html and f'href="{REPORT}"' in html
    assert reverse("admin:analytics_aicall_add") not in html


def test_calls_cannot_be_added_changed_or_deleted(admin_client, seeded):
    some = AICall.objects.first()
    change = reverse("admin:analytics_aicall_change", args=[some.pk])
    assert admin_client.get(reverse("admin:analytics_aicall_add")).status_code == 403
    assert admin_client.get(change).status_code == 200  # read-only view
    assert admin_client.post(change, {"model": "changed"}).status_code == 403
    delete = reverse("admin:analytics_aicall_delete", args=[some.pk])
    assert admin_client.get(delete).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    response = admin_client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [some.pk], "post": "yes"}
    )
    assert AICall.objects.filter(pk=some.pk).exists()
    assert response.status_code in (200, 302)
    some.refresh_from_db()
    assert some.model != "changed"


@pytest.mark.parametrize("model", ["quotas_quotaevent", "experiments_evalrun"])
def test_records_made_by_code_cannot_be_added_but_can_be_deleted(
    admin_client, admin_user, model, rf
):
    assert admin_client.get(reverse(f"admin:{model}_add")).status_code == 403
    model_admin = admin.site.get_model_admin(apps.get_model(model.replace("_", ".", 1)))
    request = rf.get("/")
    request.user = admin_user
    assert not model_admin.has_change_permission(request)
    assert model_admin.has_delete_permission(request)


def test_model_prices_are_editable(admin_client):
    add = reverse("admin:analytics_modelprice_add")
    response = admin_client.post(
        add,
        {
            "model": "new-model*",
            "input_per_million": "1.5",
            "cached_input_per_million": "",
            "output_per_million": "6",
            "effective_from": "2025-01-01",
            "source": "test",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    price = ModelPrice.objects.get(model="new-model*")
    assert price.output_per_million == Decimal(6) and price.cached_input_per_million is None
    changelist = reverse("admin:analytics_modelprice_changelist")
    response = admin_client.get(changelist, {"q": "new-model"})
    assert result_count(response) == 1
    assert "same as input" in response.content.decode()
    change = reverse("admin:analytics_modelprice_change", args=[price.pk])
    assert admin_client.get(change).status_code == 200
