"""Under `make run`'s own script and pace (a monitor pass every 5 s, rollups every 15 s), a chat
made in a real Chromium shows on the staff dashboard, in Chromium, within a minute."""

import time
from datetime import UTC, datetime

import pytest

from aiproject.tests.test_run_dev import VENV_PYTHON, ctrl_c, run_dev
from chat.tests.browser import ASSISTANT, BROWSER_MARKS, send
from chat.tests.conftest import browser  # noqa: F401 (the module's Chromium)

# The browser marks without the database: the script serves its own SQLite file.
pytestmark = [
    *(mark for mark in BROWSER_MARKS if mark.name != "django_db"),
    pytest.mark.skipif(not VENV_PYTHON.exists(), reason="needs the project's .venv"),
]

WITHIN_SECONDS = 60  # the promise (README: "within 20 s" at make run's pace)


def log_in(page, base: str, username: str, *, admin: bool) -> None:
    page.goto(f"{base}/admin/login/" if admin else f"{base}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", username)
    page.click("[type=submit]")
    page.wait_for_load_state()


def alice_on_the_dashboard(page, url: str) -> str | None:
    """Alice's row of today's top users, as the page shows it (None: not there yet)."""
    page.goto(url)
    row = page.locator("table[data-table=user] tr[data-key=alice]")
    return row.inner_text() if row.count() else None


def test_a_chat_shows_on_the_dashboard_within_a_minute(tmp_path, browser):  # noqa: F811
    with run_dev(tmp_path) as (process, base, _log):
        staff = browser.new_context().new_page()
        log_in(staff, base, "demo", admin=True)
        today = datetime.now(UTC).date().isoformat()  # the demo's reporting zone is UTC
        dashboard = f"{base}/admin/analytics/aicall/dashboard/?start={today}&end={today}"
        assert alice_on_the_dashboard(staff, dashboard) is None  # alice has not chatted yet

        chat = browser.new_context().new_page()
        log_in(chat, base, "alice", admin=False)
        send(chat, "Hello from a newcomer [sim:tokens=400]")
        chat.wait_for_selector(f"{ASSISTANT}[data-status=completed]", timeout=30_000)
        chatted = time.monotonic()

        while (row := alice_on_the_dashboard(staff, dashboard)) is None:
            waited = time.monotonic() - chatted
            assert waited < WITHIN_SECONDS, (
                f"alice's chat not on the dashboard after {waited:.0f} s"
            )
            time.sleep(1)
        print(f"alice's chat on the dashboard {time.monotonic() - chatted:.1f} s after its reply")
        assert "$" in row  # her cost, as money
        ctrl_c(process)
        process.wait(timeout=15)
