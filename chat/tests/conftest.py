"""Fixtures of the chat tests: a real Chromium (one per test module) and a fresh page per test."""

import os

import pytest

from .browser import CHROMIUM


@pytest.fixture(scope="module")
def browser():
    """One Chromium for the module; each test gets its own context (cookies, storage) and page."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop set in this thread between its calls, and Django
    # then refuses the plain sync ORM calls the fixtures make here (there is no async code
    # running concurrently: the loop only runs inside Playwright's own calls).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                ],
            )
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, app_server, user):
    context = browser.new_context(
        permissions=["clipboard-read", "clipboard-write"],
        color_scheme="light",
    )
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Console errors include CSP violations ("Refused to apply inline style..."); a refused
    # request (a 429 the test asks for) is logged too and is not a fault of the page.
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def fresh_quota_counters():
    """Empty quota counters before and after a test that charges real calls."""
    from analytics import quotas

    quotas.backend().clear()
    yield
    quotas.backend().clear()
