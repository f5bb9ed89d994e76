"""The CSV and JSON exports of the dashboard and the daily report: the same numbers as the pages.

Every figure the page shows is compared with the export of the same range (or day), written in
the page's formats; the exports' own numbers are checked against the raw calls in test_admin.py's
way (the page's numbers are).
"""

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from analytics.tests.test_admin import (  # noqa: F401 (fixtures)
    DASHBOARD,
    REPORT,
    UNPRICED_MODEL,
    admin_client,
    calls_between,
    calls_on,
    cost_sum,
    hooks,
    people,
    result_count,
    seeded,
    superuser,
)
from core.formatting import format_count, format_money, format_ms, format_percent

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)


def shown_cost(values: dict) -> str:
    return "n/a" if values["cost_usd"] is None else format_money(Decimal(values["cost_usd"]))


def shown_per_call(values: dict) -> str:
    per_call = values["cost_per_call_usd"]
    return "—" if per_call is None else format_money(Decimal(per_call))


def test_dashboard_json_export_has_the_numbers_the_page_shows(admin_client, seeded):  # noqa: F811
    t = seeded["today"]
    params = {"start": (t - timedelta(days=8)).isoformat(), "end": t.isoformat()}
    page = hooks(admin_client.get(DASHBOARD, params))
    response = admin_client.get(DASHBOARD, {**params, "format": "json"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == (
        f'attachment; filename="ai-usage-{params["start"]}-to-{params["end"]}.json"'
    )
    data = json.loads(response.content)
    assert (data["start"], data["end"], data["days_in_range"]) == (*params.values(), 9)

    for which in ("today", "yesterday"):
        assert page.metrics["calls"][which] == format_count(data[which]["calls"])
        assert page.metrics["success_rate"][which] == format_percent(data[which]["success_rate"])
        assert page.metrics["avg_latency"][which] == format_ms(data[which]["avg_latency_ms"])
        assert page.metrics["p95_latency"][which] == format_ms(data[which]["p95_latency_ms"])
        assert page.metrics["tokens"][which] == format_count(data[which]["tokens"])
        assert page.metrics["cost"][which] == shown_cost(data[which])
        assert page.metrics["cost"][f"{which}-note"] == f"{data[which]['unpriced_calls']} unpriced"

    assert page.summary["calls"] == format_count(data["totals"]["calls"])
    assert page.summary["error_rate"] == format_percent(data["totals"]["error_rate"])
    assert page.summary["tokens"] == format_count(data["totals"]["tokens"])
    assert page.summary["cost"] == shown_cost(data["totals"])

    for dimension in ("model", "task_type", "variant"):
        rows = {line["key"]: line for line in data[f"by_{dimension}"]}
        assert list(rows) == list(page.tables[dimension])  # same rows, same order
        for key, line in rows.items():
            shown = page.tables[dimension][key]
            assert shown["calls"] == format_count(line["calls"])
            assert shown["error_rate"] == format_percent(line["error_rate"])
            assert shown["tokens"] == format_count(line["tokens"])
            assert shown["cost"] == shown_cost(line)
            assert shown["cost_per_call"] == shown_per_call(line)
            assert shown["avg_latency"] == format_ms(line["avg_latency_ms"])
            assert shown["p95_latency"] == format_ms(line["p95_latency_ms"])
    assert (
        data["by_model"][-1]["key"] == UNPRICED_MODEL and data["by_model"][-1]["cost_usd"] is None
    )

    users = page.tables["user"]
    assert [u["username"] for u in data["top_users"]] == list(users)
    for user in data["top_users"]:
        assert users[user["username"]]["rank"] == str(user["rank"])
        assert users[user["username"]]["cost"] == format_money(Decimal(user["cost_usd"]))
        assert users[user["username"]]["calls"] == format_count(user["calls"])

    # The days behind the charts, against the raw calls.
    days = {d["day"]: d for d in data["days"]}
    assert len(days) == 9
    y = seeded["yesterday"].isoformat()
    assert days[y]["calls"] == calls_on(seeded["yesterday"]).count()
    assert Decimal(days[y]["cost_usd"]) == cost_sum(calls_on(seeded["yesterday"]))
    assert Decimal(days[y]["cost_by_model_usd"]["gpt-4o"]) == cost_sum(
        calls_on(seeded["yesterday"]).filter(model="gpt-4o")
    )
    empty_day = (t - timedelta(days=5)).isoformat()
    assert days[empty_day]["calls"] == 0 and days[empty_day]["p50_latency_ms"] is None


def test_dashboard_csv_export_is_the_json_in_rows(admin_client, seeded):  # noqa: F811
    t = seeded["today"]
    first = t - timedelta(days=29)
    response = admin_client.get(DASHBOARD, {"format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="ai-usage-{first.isoformat()}-to-{t.isoformat()}.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    data = json.loads(admin_client.get(DASHBOARD, {"format": "json"}).content)
    (total,) = [r for r in rows if r["section"] == "total"]
    assert int(total["calls"]) == data["totals"]["calls"] == calls_between(first, t).count()
    assert Decimal(total["cost_usd"]) == cost_sum(calls_between(first, t))
    assert len([r for r in rows if r["section"] == "day"]) == 30
    models = {r["key"]: r for r in rows if r["section"] == "model"}
    assert models[UNPRICED_MODEL]["cost_usd"] == ""  # n/a on the page
    assert Decimal(models["gpt-4o"]["cost_usd"]) == cost_sum(
        calls_between(first, t).filter(model="gpt-4o")
    )
    users = [r["key"] for r in rows if r["section"] == "user"]
    assert users == [u["username"] for u in data["top_users"]]
    day_model = [r for r in rows if r["section"] == "day_model" and r["key"] == "gpt-4o"]
    assert sum(Decimal(r["cost_usd"]) for r in day_model) == Decimal(models["gpt-4o"]["cost_usd"])


def test_page_links_to_the_exports_of_the_range_it_shows(admin_client, seeded):  # noqa: F811
    t = seeded["today"]
    params = {"start": (t - timedelta(days=3)).isoformat(), "end": t.isoformat()}
    html = admin_client.get(DASHBOARD, params).content.decode()
    query = f"start={params['start']}&amp;end={params['end']}"
    assert f'href="{DASHBOARD}?{query}&amp;format=csv"' in html
    assert f'href="{DASHBOARD}?{query}&amp;format=json"' in html
    # Today's timeout (30 s) is far above the other days' p95: clipped, and the full scale offered.
    assert 'class="chart-text chart-clip-label"' in html
    assert f'href="{DASHBOARD}?{query}&amp;scale=full#charts"' in html
    full = admin_client.get(DASHBOARD, {**params, "scale": "full"}).content.decode()
    assert "chart-clip-label" not in full
    assert f'href="{DASHBOARD}?{query}&amp;scale=clipped#charts"' in full
    # The choice is remembered (a cookie): the page without ?scale= keeps the full scale.
    assert "chart-clip-label" not in admin_client.get(DASHBOARD, params).content.decode()
    clipped = admin_client.get(DASHBOARD, {**params, "scale": "clipped"}).content.decode()
    assert "chart-clip-label" in clipped
    assert "chart-clip-label" in admin_client.get(DASHBOARD, params).content.decode()
    # Days with nothing far above the rest: no clipping, no offer.
    quiet = {"start": (t - 8 * DAY).isoformat(), "end": (t - 2 * DAY).isoformat()}
    html = admin_client.get(DASHBOARD, quiet).content.decode()
    assert "chart-clip-label" not in html and "scale=full" not in html


@pytest.mark.parametrize("fmt", ["csv", "json"])
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"start": "yesterday"}, "is not a date of the form YYYY-MM-DD"),
        ({"start": "2024-03-10", "end": "2024-03-01"}, "is after the end date"),
        ({"start": "2023-01-01", "end": "2024-06-01"}, "longer than 366 days"),
        ({"end": "2999-01-01"}, "is in the future"),
    ],
)
def test_dashboard_export_of_a_bad_range_is_refused(admin_client, fmt, params, message):  # noqa: F811
    response = admin_client.get(DASHBOARD, {**params, "format": fmt})
    assert response.status_code == 400
    if fmt == "json":
        assert response["Content-Type"] == "application/json"
        error = response.json()["error"]
        assert error["code"] == "bad_date" and message in error["message"]
    else:
        assert response["Content-Type"].startswith("text/plain")
        assert message in response.content.decode()
    assert "Showing the last" not in response.content.decode()


def test_report_json_export_has_the_numbers_the_page_shows(admin_client, seeded):  # noqa: F811
    day = seeded["yesterday"]
    page = hooks(admin_client.get(REPORT, {"day": day.isoformat()}))
    response = admin_client.get(REPORT, {"day": day.isoformat(), "format": "json"})
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == (
        f'attachment; filename="ai-cost-report-{day.isoformat()}.json"'
    )
    data = json.loads(response.content)
    assert data["day"] == day.isoformat()
    (total,) = [r for r in data["rows"] if r["section"] == "total"]
    assert page.tables["total"]["calls"]["day"] == format_count(total["calls"])
    assert page.tables["total"]["cost"]["day"] == format_money(Decimal(total["cost_usd"]))
    assert page.tables["total"]["cost"]["avg"] == format_money(Decimal(total["avg_7d_cost_usd"]))
    assert page.tables["total"]["calls"]["avg"] == f"{total['avg_7d_calls']:,.1f}"
    for section in ("model", "task_type", "variant", "user"):
        lines = [r for r in data["rows"] if r["section"] == section]
        assert [r["key"] for r in lines] == list(page.tables[section])
        for line in lines:
            shown = page.tables[section][line["key"]]
            assert shown["calls"] == format_count(line["calls"])
            assert shown["tokens"] == format_count(line["tokens"])
            assert shown["avg_cost"] == format_money(Decimal(line["avg_7d_cost_usd"]))
            if line["unpriced_calls"] < line["calls"]:
                assert shown["cost"] == format_money(Decimal(line["cost_usd"]))
            else:
                assert shown["cost"] == "n/a"


def test_report_json_of_a_bad_day_is_a_json_400(admin_client):  # noqa: F811
    response = admin_client.get(REPORT, {"day": "2999-01-01", "format": "json"})
    assert response.status_code == 400
    assert "is in the future" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "url", [DASHBOARD + "?format=csv", DASHBOARD + "?format=json", REPORT + "?format=json"]
)
def test_exports_are_for_staff_with_the_permission_only(client, django_user_model, people, url):  # noqa: F811
    login = reverse("admin:login")
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith(login)
    client.force_login(people["alice"])
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith(login)
    staff = django_user_model.objects.create_user("staffer", password="x-pass-1234", is_staff=True)
    client.force_login(staff)
    assert client.get(url).status_code == 403


def test_report_links_to_the_calls_of_its_day(admin_client, seeded):  # noqa: F811
    day = seeded["yesterday"]
    response = admin_client.get(REPORT, {"day": day.isoformat()})
    calls_url = response.context["calls_url"]
    assert result_count(admin_client.get(calls_url)) == calls_on(day).count()
    rows = {s["key"]: s["rows"] for s in response.context["sections"]}
    gpt4o = next(r for r in rows["model"] if r["key"] == "gpt-4o")
    expected = calls_on(day).filter(model="gpt-4o").count()
    assert result_count(admin_client.get(gpt4o["url"])) == expected
    carol = next(r for r in rows["user"] if r["key"] == "carol")
    assert (
        result_count(admin_client.get(carol["url"]))
        == calls_on(day).filter(user=seeded["carol"]).count()
    )
    no_variant = next(r for r in rows["variant"] if r["key"] == "")
    assert (
        result_count(admin_client.get(no_variant["url"]))
        == calls_on(day).filter(variant="").count()
    )


def test_dashboard_rows_link_to_the_calls_of_the_range_shown(admin_client, seeded):  # noqa: F811
    t = seeded["today"]
    first, last = t - timedelta(days=8), t - timedelta(days=1)
    response = admin_client.get(DASHBOARD, {"start": first.isoformat(), "end": last.isoformat()})
    in_range = calls_between(first, last)
    assert in_range.count() < calls_between(first, t).count()  # today is left out
    rows = {
        b["dimension"]: {r["key"]: r for r in b["rows"]} for b in response.context["breakdowns"]
    }
    gpt4o = rows["model"]["gpt-4o"]["url"]
    assert result_count(admin_client.get(gpt4o)) == in_range.filter(model="gpt-4o").count()
    canary = rows["variant"]["canary-b"]["url"]
    assert result_count(admin_client.get(canary)) == in_range.filter(variant="canary-b").count()
    top = response.context["top_users"][0]
    user_calls = in_range.filter(user__username=top["username"]).count()
    assert result_count(admin_client.get(top["url"])) == user_calls


def test_the_calls_changelist_shows_money_as_money(admin_client, seeded):  # noqa: F811
    html = admin_client.get(reverse("admin:analytics_aicall_changelist")).content.decode()
    assert "$0.0125" in html and "0.012500" not in html
