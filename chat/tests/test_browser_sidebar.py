"""The sidebar in a real Chromium: groups by date, full titles, search, pin, archive (docs/ui.md)."""

import json
from datetime import timedelta

from django.utils import timezone

from chat.models import Conversation, Message

from .browser import ASSISTANT, BROWSER_MARKS, log_in, send

pytestmark = BROWSER_MARKS

LONG_TITLE = (
    "A very long conversation title about planning the migration of the billing service "
    "to the new cluster without downtime"
)

GROUPS_JS = (
    "() => [...document.querySelectorAll('#conversation-list > li')].map(li =>"
    " li.classList.contains('conversation-group') ? '# ' + li.textContent.trim()"
    " : li.querySelector('.conversation-link')?.textContent.trim() ?? li.textContent.trim())"
)


def make(user, title: str, *, days_ago: int = 0, message: str = "hello"):
    conversation = Conversation.objects.create(
        user=user,
        title=title,
        title_generated=True,
        updated_at=timezone.now() - timedelta(days=days_ago),
    )
    Message.objects.create(conversation=conversation, role="user", content=message)
    return conversation


def sidebar(page) -> list[str]:
    return page.evaluate(GROUPS_JS)


def wait_sidebar(page, expected: list[str]):
    page.wait_for_function(
        f"expected => JSON.stringify(({GROUPS_JS})()) === expected",
        arg=json.dumps(expected, separators=(",", ":")),
    )


def test_sidebar_groups_search_pin_and_archive(page, app_server, user, other_user):
    make(user, "Trip to Lisbon")
    make(user, "Taxes", days_ago=1, message="How do deductions work?")
    make(user, LONG_TITLE, days_ago=3)
    make(user, "Old notes", days_ago=45)
    make(other_user, "Deductions of someone else", message="deductions")
    log_in(page, app_server.base_url)
    month = (timezone.localdate() - timedelta(days=45)).strftime("%B %Y")
    assert sidebar(page) == [
        "# Today",
        "Trip to Lisbon",
        "# Yesterday",
        "Taxes",
        "# Previous 7 days",
        LONG_TITLE,
        f"# {month}",
        "Old notes",
    ]

    # A long title is not cut to a few characters: the whole of it on hover, and in `title`.
    long_link = page.locator(".conversation-link", has_text="A very long conversation")
    assert long_link.get_attribute("title") == LONG_TITLE
    long_link.hover()
    assert long_link.evaluate("el => el.scrollHeight <= el.clientHeight + 1")
    assert long_link.evaluate("el => el.getBoundingClientRect().width") > 150

    # Search titles and messages (a prefix while typing); never another user's.
    page.fill("#conversation-search", "deduct")
    wait_sidebar(page, ["# Yesterday", "Taxes"])
    page.fill("#conversation-search", "zzz-nothing")
    page.wait_for_selector("#conversation-empty")
    assert "No conversations match" in page.locator("#conversation-empty").text_content()
    page.press("#conversation-search", "Escape")
    page.wait_for_function("() => document.querySelectorAll('.conversation-link').length === 4")

    # Pin: first, in its own group, and still so after a reload.
    taxes = page.locator(".conversation-item", has_text="Taxes")
    taxes.hover()
    taxes.locator(".pin-button").click()
    page.wait_for_function(f"() => ({GROUPS_JS})()[0] === '# Pinned'")
    assert sidebar(page)[:2] == ["# Pinned", "Taxes"]
    page.reload()
    assert sidebar(page)[:2] == ["# Pinned", "Taxes"]
    assert (
        page.locator(".conversation-item", has_text="Taxes")
        .locator(".pin-button")
        .get_attribute("aria-pressed")
        == "true"
    )

    # Archive: hidden from the list, shown behind the toggle, and back when unarchived.
    lisbon = page.locator(".conversation-item", has_text="Trip to Lisbon")
    lisbon.hover()
    lisbon.locator(".archive-button").click()
    page.wait_for_function(
        "() => ![...document.querySelectorAll('.conversation-link')]"
        ".some(a => a.textContent.includes('Lisbon'))"
    )
    page.click("#archived-toggle")
    wait_sidebar(page, ["# Today", "Trip to Lisbon"])
    assert page.locator("#archived-toggle").text_content() == "Hide archived"
    page.locator(".conversation-item", has_text="Trip to Lisbon").hover()
    page.locator(".conversation-item", has_text="Trip to Lisbon").locator(".archive-button").click()
    page.wait_for_selector("#conversation-empty")
    page.click("#archived-toggle")
    page.wait_for_function("() => document.querySelectorAll('.conversation-link').length === 4")
    assert not Conversation.objects.filter(user=user, archived=True).exists()


def test_a_new_conversation_joins_today_under_the_pinned_ones(page, app_server, user):
    make(user, "Pinned one", days_ago=10)
    Conversation.objects.filter(user=user).update(pinned=True)
    log_in(page, app_server.base_url)
    send(page, "Brand new question [sim:tokens=5]")
    page.wait_for_selector(f"{ASSISTANT}[data-status=completed]")
    page.wait_for_function(
        f"() => {{ const s = ({GROUPS_JS})(); return s[0] === '# Pinned' && s[2] === '# Today'"
        " && s.length === 4; }"
    )
    current = page.locator(".conversation-link.is-current")
    assert current.count() == 1
    assert current.get_attribute("data-conversation-id") in page.url


FOCUSED_ENTRY = """() => { const a = document.activeElement;
  const item = a.closest('.conversation-item');
  const control = ['conversation-link', 'pin-button', 'archive-button']
    .find(c => a.classList.contains(c));
  return [control || a.tagName,
    item ? item.querySelector('.conversation-link-text').textContent.trim() : null]; }"""


def test_the_keyboards_place_in_the_list_survives_the_list_being_made_again(page, app_server, user):
    make(user, "Trip to Lisbon")
    make(user, "Taxes", days_ago=1)
    log_in(page, app_server.base_url)

    # A reply in a new conversation lists the conversations again (its entry, then its title)
    # while the keyboard is on another conversation's entry: the focus stays on that entry.
    send(page, "Hello there [sim:tokens=30,tps=15]")
    page.wait_for_selector(".conversation-link.is-current")
    taxes = page.locator(".conversation-link", has_text="Taxes")
    taxes.focus()
    before = taxes.element_handle()
    page.wait_for_selector(f"{ASSISTANT}[data-status=completed]")
    page.wait_for_function("link => !link.isConnected", arg=before)  # the list was made again
    assert page.evaluate(FOCUSED_ENTRY) == ["conversation-link", "Taxes"]

    # Pin from the keyboard: the focus stays on the (now pressed) button, in the Pinned group.
    page.keyboard.press("Tab")
    assert page.evaluate(FOCUSED_ENTRY) == ["pin-button", "Taxes"]
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => ({GROUPS_JS})()[0] === '# Pinned'")
    assert page.evaluate(FOCUSED_ENTRY) == ["pin-button", "Taxes"]
    assert page.evaluate("() => document.activeElement.getAttribute('aria-label')") == "Unpin"

    # Archive from the keyboard: the entry leaves, and the focus goes to the same button of the
    # entry now in its place (not to the top of the page).
    page.keyboard.press("Tab")
    assert page.evaluate(FOCUSED_ENTRY) == ["archive-button", "Taxes"]
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => ![...document.querySelectorAll('.conversation-link')]"
        ".some(a => a.textContent.includes('Taxes'))"
    )
    first = page.locator(".conversation-link-text").first.text_content().strip()
    assert page.evaluate(FOCUSED_ENTRY) == ["archive-button", first]
