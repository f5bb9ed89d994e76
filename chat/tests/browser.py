"""Helpers for the tests that drive a real Chromium (their fixtures are in conftest.py)."""

import os
import shutil

import pytest

CHROMIUM = (
    os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
)
# pytestmark of a browser test module.
BROWSER_MARKS = [pytest.mark.django_db(transaction=True), pytest.mark.browser]
if CHROMIUM is None:
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI=true but Chromium is not installed: .ci/run must install it")
    BROWSER_MARKS.append(
        pytest.mark.skip(reason="Chromium not installed (apt-get install chromium); CI installs it")
    )

ASSISTANT = ".message[data-role=assistant]"


def log_in(page, base_url: str):
    page.goto(f"{base_url}/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_selector("#composer-input")
    # The page's handlers are attached at DOMContentLoaded (theme.js) or by its modules, which
    # run before it: on a busy machine the composer is parsed well before then, and a click
    # meanwhile does nothing (CI once clicked the theme toggle that early).
    page.wait_for_load_state("domcontentloaded")
    # And chat.js has started: it puts the focus in the message box on a wide screen, which
    # would take it from wherever a test put it before then (CI once lost a focus so).
    page.wait_for_selector("#chat-app[data-ready=true]", state="attached")


def send(page, text: str):
    # The page's modules may still be loading on a busy machine: Enter would only add a newline.
    page.wait_for_selector("#chat-app[data-ready=true]", state="attached")
    page.fill("#composer-input", text)
    page.keyboard.press("Enter")
