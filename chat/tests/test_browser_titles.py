"""A conversation's title on the chat page, in a real Chromium: Regenerate title and Rename in
the conversation header, by keyboard, updating the heading and the sidebar in place
(docs/ui.md). A screenshot of the header goes to artifacts/screenshots/ for review."""

from pathlib import Path

from analytics.models import AICall
from chat.models import Conversation

from .browser import ASSISTANT, BROWSER_MARKS, log_in, send
from .test_streaming import wait_for

pytestmark = BROWSER_MARKS

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


def wait_title(page, title: str):
    """Wait until the heading, the current sidebar entry and the tab all show ``title``."""
    page.wait_for_function(
        """t => document.getElementById('conversation-title').textContent === t
            && (document.querySelector('.conversation-link.is-current .conversation-link-text')
                || {}).textContent === t
            && document.querySelector('.conversation-link.is-current').title === t
            && document.title.startsWith(t + ' · ')""",
        arg=title,
    )


def test_regenerate_and_rename_the_title_in_place(page, app_server, user):
    log_in(page, app_server.base_url)
    send(page, "How do Python decorators work [sim:tokens=5]")
    page.wait_for_selector(f"{ASSISTANT}[data-status=completed]", timeout=40_000)
    # The first exchange's title (the page looks for it after 1.5, 4, 8, 15, 30 and 60 s).
    conversation = wait_for(
        lambda: Conversation.objects.filter(user=user, title_generated=True).first()
    )
    wait_title(page, conversation.title)
    page.evaluate("() => { window.__noReload = 1; }")

    # Rename by keyboard: Enter on the button, type, Enter saves.
    page.focus("#rename-button")
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "rename-input"
    page.keyboard.press("Control+A")
    page.keyboard.type("  My   own  name ")
    page.keyboard.press("Enter")
    wait_title(page, "My own name")
    assert Conversation.objects.get(pk=conversation.pk).title == "My own name"

    # An empty name is refused with a message; Escape leaves the title as it was.
    page.click("#rename-button")
    page.fill("#rename-input", "   ")
    page.keyboard.press("Enter")
    page.wait_for_selector("#composer-errors .error-line")
    assert "cannot be empty" in page.locator("#composer-errors").text_content()
    page.keyboard.press("Escape")
    assert page.locator("#conversation-title").text_content() == "My own name"

    # Regenerate title: an icon button with a label, by keyboard; the model's title replaces it.
    button = page.locator("#title-regenerate-button")
    assert button.get_attribute("aria-label") == "Regenerate title"
    assert button.locator("svg.icon").count() == 1
    calls_before = AICall.objects.filter(conversation_id=conversation.pk, task_type="title").count()
    button.focus()
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => document.getElementById('conversation-title').textContent !== 'My own name'"
    )
    page.wait_for_function(
        "() => !document.getElementById('title-regenerate-button').hasAttribute('aria-busy')"
    )
    stored = Conversation.objects.get(pk=conversation.pk)
    assert stored.title_generated and stored.title not in ("", "My own name")
    wait_title(page, stored.title)
    assert page.evaluate("() => document.activeElement.id") == "title-regenerate-button"
    assert (
        AICall.objects.filter(conversation_id=conversation.pk, task_type="title").count()
        == calls_before + 1
    )
    assert page.evaluate("() => window.__noReload") == 1  # no navigation
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "title-regenerated.png")  # for review, not compared
    page.reload()
    wait_title(page, stored.title)

    # While a reply is being written the server refuses, and the page says why.
    send(page, "A long one [sim:tokens=2000,tps=20]")
    page.wait_for_selector(f"{ASSISTANT}[data-status=streaming]")
    page.click("#title-regenerate-button")
    page.wait_for_selector("#composer-errors .error-line")
    assert "Wait for the reply" in page.locator("#composer-errors").text_content()
    assert page.locator("#conversation-title").text_content() == stored.title
    page.click("#stop-button")
    page.wait_for_selector(f"{ASSISTANT}[data-status=cancelled]")
