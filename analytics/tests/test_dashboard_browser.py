"""The dashboard and the daily report in a real Chromium, served by daphne: the charts' hover
read-outs (with units), series toggles, the clipped scale, the click into a day's report and
its calls, the exports as downloaded, and the tables on a 390 px phone (the scale toggle:
test_dashboard_scale_browser.py). Also the API over real HTTP with a bearer token."""

import csv
import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from analytics.api_tokens import issue_api_token
from analytics.models import APIToken
from analytics.tests.test_admin import DASHBOARD, call, roll_up, today
from chat.tests.browser import BROWSER_MARKS
from chat.tests.conftest import browser  # noqa: F401 (the module's Chromium)
from core.formatting import format_count, format_money, format_percent
from devtools.live import login_cookies

pytestmark = BROWSER_MARKS

COSTLY = Decimal("40")  # one day far above the others: the cost chart clips it
LONG_MODEL = "gpt-4o-mini-2024-07-18-extended-context"


@pytest.fixture
def history(transactional_db, django_user_model):
    """Ten days of calls; six days back one very costly day, four days back a very slow one."""
    root = django_user_model.objects.create_superuser("root", "root@example.com", "x-pass-1")
    people = [
        django_user_model.objects.create_user(f"user-with-a-long-name-{i}", password="x")
        for i in range(3)
    ]
    t = today()
    for back in range(10):
        day = t - timedelta(days=back)
        for i, person in enumerate(people):
            call(day, person, "gpt-4o", cost=f"0.0{back + 1}", hour=1 + i, latency_ms=700 + back)
            call(day, person, LONG_MODEL, cost="0.004", hour=4 + i, latency_ms=400)
        call(day, people[0], "gpt-4o", status="error", cost="0.001", hour=8, latency_ms=3000)
    call(t - timedelta(days=6), people[1], "gpt-4o", cost=str(COSTLY), hour=12)
    call(t - timedelta(days=4), people[2], "gpt-4o", hour=13, latency_ms=60_000)  # a slow day
    roll_up(t - timedelta(days=12))
    return {"root": root, "today": t, "costly": t - timedelta(days=6)}


def open_page(browser, app_server, user, path, **context_options):  # noqa: F811
    context = browser.new_context(**{"color_scheme": "light", **context_options})
    cookies = login_cookies(user)
    context.add_cookies(
        [{"name": k, "value": v, "url": app_server.base_url} for k, v in cookies.items()]
    )
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # CSP violations are console errors ("Refused to apply inline style ..."). A failed request
    # of the page is caught below; the console's copy of it would include Chromium's own
    # /favicon.ico probe (the admin links none; nginx serves it in production).
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on(
        "response",
        lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None,
    )
    page.goto(f"{app_server.base_url}{path}")
    return context, page, errors


def chart(page, key: str):
    return page.locator(f"figure[data-chart={key}]")


def test_charts_hover_toggle_clip_and_drill_down(browser, app_server, history):  # noqa: F811
    first = (history["today"] - timedelta(days=9)).isoformat()
    ten_days = f"{DASHBOARD}?start={first}&end={history['today'].isoformat()}"
    context, page, errors = open_page(
        browser, app_server, history["root"], ten_days, viewport={"width": 1280, "height": 900}
    )
    costly = history["costly"].isoformat()
    costly_index = 9 - 6  # the ten days start 9 days back; the costly day is 6 days back
    cost = chart(page, "cost")
    # Money on the axis, zero included.
    ticks = cost.locator("text.chart-tick").all_text_contents()
    assert ticks[0] == "$0" and all(t.startswith("$") for t in ticks if "-" not in t)

    # The costly day is clipped: its value is written above it, the other days keep their size.
    labels = cost.locator("text.chart-clip-label")
    assert labels.count() == 1 and labels.first.text_content().startswith("↑ $40")
    other_day = cost.locator(".chart-bar[data-index='1']").first  # $0.27 of gpt-4o
    assert float(other_day.get_attribute("height")) > 40  # not flattened to a sliver

    # Hover: the day's values, in money.
    band = cost.locator("a.chart-day[data-index='1'] .chart-band")
    band.hover()
    tip = cost.locator(".chart-tip")
    tip.wait_for(state="visible")
    text = tip.inner_text()
    assert "gpt-4o: $" in text and "Click for the day's report" in text
    # The browser's own tooltip does not double it.
    assert band.locator("title").count() == 0
    chart(page, "latency").locator(".chart-band[data-index='2']").hover()
    latency_tip = chart(page, "latency").locator(".chart-tip")
    latency_tip.wait_for(state="visible")
    assert " ms" in latency_tip.inner_text() and "p95:" in latency_tip.inner_text()
    assert tip.is_hidden()  # one read-out at a time
    # The slow day is clipped on the latency chart, and unmarked when its p95 is hidden.
    slow = chart(page, "latency").locator("text.chart-clip-label")
    assert slow.count() == 1 and slow.text_content().endswith(" s")
    p95 = chart(page, "latency").locator(".chart-legend-item[data-series='1']")
    p95.click()
    assert slow.is_hidden() and chart(page, "latency").locator(".chart-line.is-hidden").count() == 1
    p95.click()
    assert slow.is_visible()
    chart(page, "calls").locator(".chart-band[data-index='2']").hover()
    calls_text = chart(page, "calls").locator(".chart-tip").inner_text()
    assert "Succeeded: 6 calls" in calls_text and "Failed: 1 call" in calls_text
    assert "Error rate: 14.3%" in calls_text
    chart(page, "tokens").locator(".chart-band[data-index='2']").hover()
    assert " tokens" in chart(page, "tokens").locator(".chart-tip").inner_text()

    # Toggle a series: its bars go, the others are restacked on the baseline.
    legend = cost.locator(".chart-legend-item", has_text="gpt-4o").first
    assert legend.text_content() == "gpt-4o"
    bottom = float(cost.locator("svg.chart").get_attribute("data-plot-bottom"))
    long_bar = cost.locator(".chart-bar[data-series='1'][data-index='0']")
    y_before = float(long_bar.get_attribute("y"))
    legend.click()
    assert legend.get_attribute("aria-pressed") == "false"
    assert cost.locator(".chart-bar[data-series='0'].is-hidden").count() == 10
    y_after = float(long_bar.get_attribute("y"))
    height = float(long_bar.get_attribute("height"))
    assert y_after > y_before and y_after + height == pytest.approx(bottom, abs=0.05)
    assert cost.locator("text.chart-clip-label.is-hidden").count() == 1
    legend.press("Enter")  # the keyboard too
    assert legend.get_attribute("aria-pressed") == "true"
    assert float(long_bar.get_attribute("y")) == pytest.approx(y_before, abs=0.05)
    assert cost.locator(".chart-bar.is-hidden").count() == 0
    # Tab on from the legend reaches the first day: the keyboard gets the read-out too.
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.getAttribute('data-index')")
    assert focused == "0"
    first_day = history["today"] - timedelta(days=9)
    assert tip.is_visible() and tip.inner_text().startswith(f"{first_day.isoformat()}: $")

    # The full scale, without clipping, on request (test_the_scale_toggle... measures it).
    page.click("a[data-scale=full]")
    page.wait_for_selector(".analytics-charts[data-scale=full]")
    assert chart(page, "cost").locator("text.chart-clip-label").count() == 0

    assert chart(page, "cost").locator("a.chart-day").count() == 10  # the same range

    # Click the costly day: its report, then its calls in the admin.
    chart(page, "cost").locator(f"a.chart-day[data-index='{costly_index}']").click()
    page.wait_for_url(f"**/report/?day={costly}")
    day_cost = Decimal("0.07") * 3 + Decimal("0.004") * 3 + Decimal("0.001") + COSTLY
    shown = page.locator("[data-table=total] tr[data-key=cost] [data-col=day]").inner_text()
    assert shown == f"${day_cost:,.2f}"
    page.click("a[data-link=day-calls]")
    page.wait_for_url("**/aicall/?created_at__gte=*")
    assert page.locator("#result_list tbody tr").count() == 3 * 2 + 2
    context.close()
    assert not errors, errors


def test_the_exports_downloaded_in_chromium_match_the_page(browser, app_server, history):  # noqa: F811
    first = (history["today"] - timedelta(days=9)).isoformat()
    end = history["today"].isoformat()
    context, page, errors = open_page(
        browser, app_server, history["root"], f"{DASHBOARD}?start={first}&end={end}"
    )
    shown = {
        "calls": page.inner_text("[data-summary=calls]"),
        "error_rate": page.inner_text("[data-summary=error_rate]"),
        "tokens": page.inner_text("[data-summary=tokens]"),
        "cost": page.inner_text("[data-summary=cost]"),
    }
    by_model = {
        row.get_attribute("data-key"): (
            row.locator("[data-col=calls]").inner_text(),
            row.locator("[data-col=cost]").inner_text(),
        )
        for row in page.locator("table[data-table=model] tbody tr[data-key]").all()
    }
    assert set(by_model) == {"gpt-4o", LONG_MODEL}

    with page.expect_download() as csv_download:
        page.click("a[data-export=csv]")
    assert csv_download.value.suggested_filename == f"ai-usage-{first}-to-{end}.csv"
    with open(csv_download.value.path(), newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    (total,) = [r for r in rows if r["section"] == "total"]
    # The file's figures, written as the page writes them, are the page's.
    assert {
        "calls": format_count(int(total["calls"])),
        "error_rate": format_percent(Decimal(total["error_rate"])),
        "tokens": format_count(int(total["tokens"])),
        "cost": format_money(Decimal(total["cost_usd"])),
    } == shown
    models = {r["key"]: r for r in rows if r["section"] == "model"}
    assert {
        key: (format_count(int(r["calls"])), format_money(Decimal(r["cost_usd"])))
        for key, r in models.items()
    } == by_model
    days = [r["day"] for r in rows if r["section"] == "day"]
    assert len(days) == 10 and days[0] == first and days[-1] == end

    with page.expect_download() as json_download:
        page.click("a[data-export=json]")
    assert json_download.value.suggested_filename == f"ai-usage-{first}-to-{end}.json"
    document = json.loads(Path(json_download.value.path()).read_text())
    assert document["days_in_range"] == 10 and document["start"] == first
    assert format_money(Decimal(document["totals"]["cost_usd"])) == shown["cost"]
    assert format_count(document["totals"]["calls"]) == shown["calls"]
    context.close()
    assert not errors, errors


def no_word_broken(page) -> list[str]:
    """Return the table labels whose words are split across lines (none may be)."""
    return page.evaluate(
        """() => {
          const broken = [];
          for (const cell of document.querySelectorAll('.analytics-table th, .analytics-table caption')) {
            const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
            for (let node = walker.nextNode(); node; node = walker.nextNode()) {
              const re = /\\S+/g;
              let match;
              while ((match = re.exec(node.data))) {
                const range = document.createRange();
                range.setStart(node, match.index);
                range.setEnd(node, match.index + match[0].length);
                const tops = new Set(Array.from(range.getClientRects()).map(r => Math.round(r.top)));
                if (tops.size > 1) broken.push(match[0]);
              }
            }
          }
          return broken;
        }"""
    )


@pytest.mark.parametrize("path", [DASHBOARD, "/admin/analytics/aicall/report/"])
def test_tables_are_readable_on_a_phone(browser, app_server, history, path):  # noqa: F811
    context, page, errors = open_page(
        browser,
        app_server,
        history["root"],
        path,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    page.wait_for_selector(".analytics-table table")
    # The page itself does not scroll sideways: the tables scroll inside their boxes.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width}px wide"
    boxes = page.evaluate(
        """() => Array.from(document.querySelectorAll('.analytics-table')).map(box => ({
            // The box or, with the admin's phone styles, the table in it is the scroll box.
            scroll: Math.max(box.scrollWidth - box.clientWidth,
                             box.querySelector('table').scrollWidth - box.querySelector('table').clientWidth),
            client: 0,
            right: box.getBoundingClientRect().right,
            overflow: getComputedStyle(box).overflowX}))"""
    )
    assert boxes and all(b["right"] <= 390 and b["overflow"] == "auto" for b in boxes), boxes
    assert any(b["scroll"] > b["client"] for b in boxes)  # a wide table scrolls in its box
    assert no_word_broken(page) == []
    # The charts keep a readable size and scroll inside their box too.
    charts = page.evaluate(
        """() => Array.from(document.querySelectorAll('.analytics-chart-scroll')).map(box => ({
            right: box.getBoundingClientRect().right,
            svg: box.querySelector('svg').getBoundingClientRect().width}))"""
    )
    assert all(c["right"] <= 390 and c["svg"] >= 500 for c in charts), charts
    assert page.locator(f"th:has-text('{LONG_MODEL}')").first.is_visible()
    context.close()
    assert not errors, errors


def test_touch_first_tap_shows_the_values_second_opens_the_report(
    browser,  # noqa: F811
    app_server,
    history,
):
    context, page, errors = open_page(
        browser,
        app_server,
        history["root"],
        DASHBOARD,
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
    )
    day = chart(page, "cost").locator("a.chart-day[data-index='28']")
    day.tap()
    tip = chart(page, "cost").locator(".chart-tip")
    tip.wait_for(state="visible")
    assert "Tap again for the day's report" in tip.inner_text()
    assert "/report/" not in page.url
    day.tap()
    page.wait_for_url("**/report/?day=*")
    context.close()
    assert not errors, errors


def test_the_api_over_http_with_a_bearer_token(app_server, history):
    token = APIToken(user=history["root"], name="BI")
    key = issue_api_token(token=token, created_by=history["root"])
    url = f"{app_server.base_url}/api/analytics/v1/dashboard"
    params = {"start": (history["today"] - timedelta(days=9)).isoformat()}
    answer = httpx.get(url, params=params, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert answer.status_code == 200
    data = answer.json()
    assert data["totals"]["calls"] == 10 * 7 + 2
    assert data["days_in_range"] == 10
    refused = httpx.get(url, headers={"Authorization": "Bearer aia_wrong"}, timeout=30)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_token"
    bad = httpx.get(url, params={"start": "soon"}, headers={"Authorization": f"Bearer {key}"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "start"
