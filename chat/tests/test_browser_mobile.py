"""The chat page on a phone, in a real Chromium: at 360 and 390 px nothing is cut off, the reply's
footer shows whole, and the conversation list is a drawer that keyboards and screen readers can
use. Screenshots of the main states go to artifacts/screenshots/ (gitignored) for review."""

from pathlib import Path

import pytest

from .browser import ASSISTANT, BROWSER_MARKS, log_in, send

pytestmark = BROWSER_MARKS

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"

# Every visible element must lie inside the viewport, except inside the boxes that scroll
# sideways on purpose (code, tables) and text that ends in an ellipsis; and no other box may hide
# part of its content sideways (scrollWidth > clientWidth).
CUT_OFF = """() => {
  const vw = document.documentElement.clientWidth;
  const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
    [...e.classList].map(c => '.' + c).join('');
  const scrollsOnPurpose = (e) => e.closest('pre, .markdown table') ||
    getComputedStyle(e).textOverflow === 'ellipsis';
  const outside = [], clipped = [];
  for (const e of document.querySelectorAll('body *')) {
    if (!e.checkVisibility({ visibilityProperty: true })) continue;
    if (e.closest('.visually-hidden')) continue;
    const r = e.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    if ((r.left < -0.5 || r.right > vw + 0.5) && !scrollsOnPurpose(e.parentElement || e)) {
      outside.push(`${name(e)} ${Math.round(r.left)}..${Math.round(r.right)}`);
    }
    const style = getComputedStyle(e);
    if (style.overflowX !== 'visible' && e.scrollWidth > e.clientWidth + 1 && !scrollsOnPurpose(e)) {
      clipped.push(`${name(e)} ${e.scrollWidth} > ${e.clientWidth}`);
    }
  }
  return { outside, clipped, pageWidth: document.documentElement.scrollWidth, vw };
}"""

FULLY_VISIBLE = """(e) => {
  const r = e.getBoundingClientRect();
  const list = document.getElementById('message-list').getBoundingClientRect();
  return r.width > 0 && r.left >= 0 && r.right <= document.documentElement.clientWidth
    && r.top >= list.top && r.bottom <= list.bottom;
}"""


@pytest.fixture(params=[360, 390], ids=lambda width: f"{width}px")
def phone(request, browser, app_server, user):
    width = request.param
    context = browser.new_context(
        viewport={"width": width, "height": 740},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        color_scheme="light",
    )
    page = context.new_page()
    page.set_default_timeout(40_000)  # three test workers share two cores
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.width = width
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def shot(page, state: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"mobile-{page.width}px-{state}.png")


def assert_nothing_cut_off(page) -> None:
    result = page.evaluate(CUT_OFF)
    assert result["outside"] == [] and result["clipped"] == [], result
    assert result["pageWidth"] <= result["vw"]


def sidebar_state(page) -> dict:
    return page.evaluate(
        """() => ({
          expanded: document.getElementById('sidebar-toggle').getAttribute('aria-expanded'),
          visible: document.getElementById('sidebar').checkVisibility({ visibilityProperty: true }),
          focus: document.activeElement && (document.activeElement.id ||
                 document.activeElement.className),
          inert: document.querySelector('.chat-main').inert,
        })"""
    )


def test_nothing_is_cut_off_and_the_reply_footer_shows_whole(phone, app_server):
    page = phone
    page.goto(f"{app_server.base_url}/")  # the log-in page
    assert_nothing_cut_off(page)
    shot(page, "login")
    log_in(page, app_server.base_url)
    assert_nothing_cut_off(page)
    shot(page, "empty")
    # A long title, a user message with a long word, a reply with a list, a table and code.
    send(
        page,
        "Explain supercalifragilisticexpialidocious_and_a_very_long_identifier please "
        "[sim:tokens=160,tps=60]",
    )
    page.wait_for_function(
        "() => document.querySelector('.message[data-role=assistant] .message-body li')"
    )
    shot(page, "streaming")
    page.wait_for_selector(f"{ASSISTANT}[data-status=completed] .message-stats")
    reply = page.locator(ASSISTANT).last
    footer = reply.locator(".message-footer")
    footer.scroll_into_view_if_needed()
    for part in (
        ".message-stats",
        ".feedback-up",
        ".feedback-down",
        ".copy-reply-button",
        ".regenerate-button",
    ):
        assert reply.locator(part).evaluate(FULLY_VISIBLE), part
    stats = reply.locator(".message-stats").text_content()
    assert "output tokens" in stats and "tok/s" in stats
    assert_nothing_cut_off(page)
    shot(page, "reply")

    # The feedback form is the widest thing a reply grows.
    reply.locator(".feedback-down").click()
    reply.locator(".feedback-comment-input").wait_for()
    assert_nothing_cut_off(page)
    assert reply.locator(".feedback-comment button").evaluate(FULLY_VISIBLE)


def test_the_conversation_list_is_a_drawer_for_keyboards_and_screen_readers(phone, app_server):
    page = phone
    log_in(page, app_server.base_url)
    send(page, "First conversation [sim:tokens=20]")
    page.wait_for_selector(f"{ASSISTANT}[data-status=completed]")
    first_url = page.url
    page.goto(f"{app_server.base_url}/")
    send(page, "Second conversation [sim:tokens=20]")
    page.wait_for_selector(f"{ASSISTANT}[data-status=completed]")

    # Closed: only the menu button, which says so.
    toggle = page.locator("#sidebar-toggle")
    assert toggle.is_visible() and toggle.get_attribute("aria-controls") == "sidebar"
    state = sidebar_state(page)
    assert (state["expanded"], state["visible"], state["inert"]) == ("false", False, False)

    # Keyboard: Enter opens it and moves the focus to the current conversation.
    toggle.focus()
    page.keyboard.press("Enter")
    page.locator("#sidebar").wait_for(state="visible")
    # It slides in (a short transition): measure once it is in place.
    page.wait_for_function(
        "() => document.getElementById('sidebar').getBoundingClientRect().left >= 0"
    )
    state = sidebar_state(page)
    assert state["expanded"] == "true" and state["inert"] is True
    assert page.evaluate("() => document.activeElement.classList.contains('is-current')")
    assert page.locator(".conversation-link").count() == 2
    # The page behind it is inert: Tab and Shift+Tab never leave the drawer for it.
    assert page.evaluate("() => document.querySelector('.topbar').inert")
    for key in ["Tab"] * 5 + ["Shift+Tab"] * 5:
        page.keyboard.press(key)
        assert page.evaluate(
            """() => { const a = document.activeElement;
                 return !a || a === document.body || !!a.closest('#sidebar'); }"""
        ), key
    page.locator(".conversation-link.is-current").focus()
    assert_nothing_cut_off(page)
    shot(page, "drawer-open")

    # Escape closes it and gives the focus back to the menu button.
    page.keyboard.press("Escape")
    page.locator("#sidebar").wait_for(state="hidden")
    assert sidebar_state(page) == {
        "expanded": "false",
        "visible": False,
        "focus": "sidebar-toggle",
        "inert": False,
    }

    # The close button and the backdrop close it too.
    toggle.click()
    page.locator("#sidebar-close").click()
    page.locator("#sidebar").wait_for(state="hidden")
    assert sidebar_state(page)["focus"] == "sidebar-toggle"
    toggle.click()
    page.locator("#sidebar").wait_for(state="visible")
    page.mouse.click(page.width - 10, 400)  # the backdrop, right of the drawer
    page.locator("#sidebar").wait_for(state="hidden")
    assert sidebar_state(page)["expanded"] == "false"

    # A conversation in the list opens it.
    toggle.click()
    page.locator(".conversation-link:not(.is-current)").click()
    page.wait_for_url(first_url)
    assert (
        page.locator(".message[data-role=user] .message-body").first.text_content().strip()
        == "First conversation [sim:tokens=20]"
    )
    assert sidebar_state(page)["expanded"] == "false"


def test_escape_closes_the_drawer_without_stopping_a_reply(phone, app_server):
    page = phone
    log_in(page, app_server.base_url)
    send(page, "A long one [sim:tokens=1000,tps=20]")  # 50 s: still streaming under load
    reply = page.locator(ASSISTANT).last
    page.wait_for_function(
        "el => el.textContent.length > 10", arg=reply.locator(".message-body").element_handle()
    )
    page.locator("#sidebar-toggle").click()
    page.locator("#sidebar").wait_for(state="visible")
    page.keyboard.press("Escape")  # closes the drawer only
    page.locator("#sidebar").wait_for(state="hidden")
    page.wait_for_timeout(300)
    assert reply.get_attribute("data-status") == "streaming"
    assert reply.locator(".message-badge").count() == 0
    page.keyboard.press("Escape")  # now it stops the reply
    page.wait_for_selector(f"{ASSISTANT}[data-status=cancelled]")


def test_wide_screens_keep_the_list_as_a_column(browser, app_server, user):
    context = browser.new_context(viewport={"width": 1024, "height": 700})
    page = context.new_page()
    try:
        log_in(page, app_server.base_url)
        assert not page.locator("#sidebar-toggle").is_visible()
        assert not page.locator("#sidebar-close").is_visible()
        assert page.locator("#sidebar").is_visible()
        assert page.locator("#new-conversation").is_visible()
        # The focus in the list when the window narrows (or the page is zoomed) and the list
        # becomes a closed drawer: it goes to the menu button, not to the page.
        page.focus("#new-conversation")
        assert page.evaluate("() => document.activeElement.id") == "new-conversation"
        page.set_viewport_size({"width": 700, "height": 700})
        page.wait_for_function(
            "() => document.activeElement.id === 'sidebar-toggle'", timeout=10_000
        )
        # Narrowing the window shows the menu button; widening it again closes an open drawer.
        page.locator("#sidebar-toggle").click()
        page.locator("#sidebar").wait_for(state="visible")
        page.set_viewport_size({"width": 1024, "height": 700})
        page.wait_for_function(
            "() => document.getElementById('sidebar-toggle').getAttribute('aria-expanded') === 'false'"
        )
        assert page.locator("#sidebar").is_visible()
        assert page.evaluate("() => document.querySelector('.chat-main').inert") is False
    finally:
        context.close()
