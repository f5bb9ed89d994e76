"""The dashboard's scale toggle in a real Chromium, served by daphne: with one very costly day, the
clipped scale makes the ordinary days' bars visibly taller than every day to scale; the toggle
redraws the charts in place, keeps the axis labels money, is remembered, and works without the
script."""

import re
from datetime import timedelta

import pytest

from analytics.tests.test_admin import DASHBOARD
from analytics.tests.test_dashboard_browser import COSTLY, chart, history, open_page  # noqa: F401
from chat.tests.browser import BROWSER_MARKS
from chat.tests.conftest import browser  # noqa: F401 (the module's Chromium)

pytestmark = BROWSER_MARKS


DAY_HEIGHTS = """(key) => {
  const days = {};
  for (const bar of document.querySelectorAll(`figure[data-chart="${key}"] .chart-bar`)) {
    const day = Number(bar.dataset.index);
    days[day] = (days[day] || 0) + bar.getBoundingClientRect().height;
  }
  return days;
}"""


def day_heights(page, key: str = "cost") -> dict[int, float]:
    """Each day's stacked bar as drawn on the screen, in CSS pixels."""
    return {int(day): height for day, height in page.evaluate(DAY_HEIGHTS, key).items()}


def ticks_are_money(page) -> list[str]:
    ticks = chart(page, "cost").locator("svg.chart > text.chart-tick[text-anchor=end]")
    texts = ticks.all_text_contents()
    assert texts[0] == "$0" and len(texts) >= 3, texts
    assert all(re.fullmatch(r"\$\d[\d,]*(\.\d+)?k?", t) for t in texts), texts
    return texts


def test_the_scale_toggle_redraws_the_charts_in_place(browser, app_server, history):  # noqa: F811
    first = (history["today"] - timedelta(days=9)).isoformat()
    ten_days = f"{DASHBOARD}?start={first}&end={history['today'].isoformat()}"
    context, page, errors = open_page(
        browser, app_server, history["root"], ten_days, viewport={"width": 1280, "height": 900}
    )
    costly = 9 - 6  # the costly day's index in the ten days
    clipped = day_heights(page)
    clipped_ticks = ticks_are_money(page)
    assert page.locator(".analytics-charts").get_attribute("data-scale") == "clipped"
    page.evaluate("window.notReloaded = true")

    page.click("a[data-scale=full]")
    page.wait_for_selector(".analytics-charts[data-scale=full]")
    assert page.evaluate("window.notReloaded") is True  # redrawn in place, not a new page
    assert "scale=full" in page.url
    full = day_heights(page)
    full_ticks = ticks_are_money(page)
    assert float(full_ticks[-1].strip("$").replace(",", "")) >= float(COSTLY)
    assert chart(page, "cost").locator("text.chart-clip-label").count() == 0
    small_days = [day for day in clipped if day != costly]
    assert len(small_days) == 9
    # On the clipped scale the ordinary days are visibly taller: 20 px and up, against 1 or 2.
    for day in small_days:
        assert clipped[day] >= 20 and clipped[day] >= 5 * full[day], (day, clipped, full)
    # The costly day is the tallest on both: drawn to the plot's top when clipped.
    assert max(clipped, key=clipped.get) == costly and max(full, key=full.get) == costly
    # The redrawn charts are live: a hover reads out the day in money.
    chart(page, "cost").locator(".chart-band[data-index='1']").hover()
    tip = chart(page, "cost").locator(".chart-tip")
    tip.wait_for(state="visible")
    assert "gpt-4o: $" in tip.inner_text()

    # And back: the ordinary days grow again, as first drawn.
    page.click("a[data-scale=clipped]")
    page.wait_for_selector(".analytics-charts[data-scale=clipped]")
    again = day_heights(page)
    assert all(again[day] == pytest.approx(clipped[day], abs=0.5) for day in clipped)
    assert ticks_are_money(page) == clipped_ticks
    assert chart(page, "cost").locator("text.chart-clip-label").count() == 1

    # The choice is remembered: the dashboard opened again, without ?scale=, keeps it.
    page.click("a[data-scale=full]")
    page.wait_for_selector(".analytics-charts[data-scale=full]")
    page.goto(f"{app_server.base_url}{ten_days}")
    assert page.locator(".analytics-charts").get_attribute("data-scale") == "full"
    assert day_heights(page)[1] == pytest.approx(full[1], abs=0.5)
    context.close()
    assert not errors, errors


def test_the_scale_toggle_works_without_the_script(browser, app_server, history):  # noqa: F811
    context, page, errors = open_page(
        browser, app_server, history["root"], DASHBOARD, java_script_enabled=False
    )
    # No script ran (it would have made the legend entries buttons).
    assert chart(page, "cost").locator(".chart-legend-item").first.get_attribute("role") is None
    bar = chart(page, "cost").locator(".chart-bar[data-series='0'][data-index='27']")
    clipped = float(bar.get_attribute("height"))
    page.click("a[data-scale=full]")
    page.wait_for_url("**scale=full#charts")
    assert page.locator(".analytics-charts").get_attribute("data-scale") == "full"
    assert float(bar.get_attribute("height")) * 5 <= clipped
    context.close()
    assert not errors, errors
