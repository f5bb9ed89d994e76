"""Accessibility of the log-in and chat pages in a real Chromium.

axe-core (vendored for the tests only, chat/tests/vendor/) finds no serious or critical violation
on the log-in page and on the chat page (empty, with a finished reply holding code, a table and
lists, with a failed reply), in the light and the dark theme, at 1280x800 and at 390x844 with the
conversation drawer closed and open. And the page works from the keyboard alone: every stop of the
tab order is visible, shows a focus indicator and has an accessible name; Enter sends, Escape
stops, the reply's toolbar is reached in order; the streaming reply is in a polite live region
that is busy while it grows. Screenshots of the states go to artifacts/screenshots/ (gitignored).
"""

from pathlib import Path

from .a11y import (
    AXE_JS,
    axe_violations,
    check_axe,
    focus_problems,
    focused,
    remember_unfocused_look,
)
from .browser import ASSISTANT, BROWSER_MARKS, log_in, send

pytestmark = BROWSER_MARKS

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
WIDE = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SIZES = {"1280x800": WIDE, "390x844": PHONE}
THEMES = ("light", "dark")
SHOWCASE = "Show me a table, a list, some python code and math"


def show(page, theme: str, size: dict) -> None:
    """Follow the system's theme (no choice stored) at the given window size."""
    page.emulate_media(color_scheme=theme, reduced_motion="reduce")
    page.wait_for_function("t => document.documentElement.dataset.theme === t", arg=theme)
    page.set_viewport_size(size)
    # Two frames: the layout for the new size is done and its ResizeObservers have run.
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def shot(page, state: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"a11y-{state}.png")


def open_drawer(page) -> None:
    page.locator("#sidebar-toggle").click()
    page.wait_for_function(
        """() => { const s = document.getElementById('sidebar');
             return s.checkVisibility({ visibilityProperty: true }) &&
               s.getBoundingClientRect().left >= 0; }"""
    )


def close_drawer(page) -> None:
    page.keyboard.press("Escape")
    page.locator("#sidebar").wait_for(state="hidden")


def check_every_state(page, name: str, failures: list[str], *, drawer: bool) -> None:
    """axe in both themes at both sizes, and with the drawer open on the phone if `drawer`."""
    for theme in THEMES:
        for size_name, size in SIZES.items():
            show(page, theme, size)
            state = f"{name}-{theme}-{size_name}"
            check_axe(page, state, failures)
            shot(page, state)
            if drawer and size is PHONE:
                open_drawer(page)
                check_axe(page, f"{state}-drawer", failures)
                shot(page, f"{state}-drawer")
                close_drawer(page)


def test_axe_finds_nothing_serious_on_the_log_in_page(page, app_server):
    failures: list[str] = []
    page.goto(f"{app_server.base_url}/")  # the log-in page
    check_every_state(page, "login", failures, drawer=False)
    # A refused log-in: the error line and the fields marked invalid.
    show(page, "light", WIDE)
    page.fill("input[name=username]", "nobody")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    page.locator(".form-errors").wait_for()
    for theme in THEMES:
        show(page, theme, WIDE)
        check_axe(page, f"login-refused-{theme}", failures)
    assert not failures, "\n".join(failures)

    # The check can fail: a button without a name and grey-on-grey text are found.
    page.evaluate(
        """() => {
          const b = document.createElement('button'); b.id = 'nameless'; document.body.append(b);
          const p = document.createElement('p'); p.id = 'faint'; p.textContent = 'Faint text';
          p.style.color = '#bbb'; p.style.background = '#ccc'; document.body.append(p);
        }"""
    )
    found = {v["id"]: v for v in axe_violations(page)}
    assert found["button-name"]["impact"] == "critical"
    assert "#nameless" in [n["target"] for n in found["button-name"]["nodes"]]
    assert found["color-contrast"]["impact"] == "serious"
    assert "#faint" in [n["target"] for n in found["color-contrast"]["nodes"]]


def test_axe_finds_nothing_serious_on_the_chat_page(page, app_server):
    failures: list[str] = []
    log_in(page, app_server.base_url)
    check_every_state(page, "chat-empty", failures, drawer=True)

    # A reply being written: the Stop button, the streaming text.
    send(page, "Tell me a long story [sim:tokens=1000,tps=20]")
    page.wait_for_function(
        "() => (document.querySelector('.message[data-status=streaming] .message-body') || {})"
        ".textContent?.length > 10"
    )
    for theme in THEMES:
        show(page, theme, WIDE)
        check_axe(page, f"chat-streaming-{theme}", failures)
        shot(page, f"chat-streaming-{theme}")
    page.keyboard.press("Escape")
    page.wait_for_selector(f"{ASSISTANT}[data-status=cancelled]")

    show(page, "light", WIDE)
    send(page, SHOWCASE)
    reply = page.locator(f"{ASSISTANT}[data-status=completed]")
    reply.locator(".message-stats").wait_for()
    # The reply holds every block the check is about (KaTeX typesets once its script has loaded,
    # which may be after the reply's stats line: wait for each).
    for block in (
        "table",
        "ol",
        "ul",
        ".codeblock pre code",
        ".codeblock-copy",
        ".math-display .katex",
    ):
        reply.locator(f".message-body {block}").first.wait_for(state="attached", timeout=15_000)
    check_every_state(page, "chat-reply", failures, drawer=True)
    assert not failures, "\n".join(failures)

    # The comment box that a thumbs-down opens.
    show(page, "light", WIDE)
    reply.locator(".feedback-down").click()
    reply.locator(".feedback-comment-input").wait_for()
    for theme in THEMES:
        show(page, theme, WIDE)
        check_axe(page, f"chat-comment-{theme}", failures)
    assert not failures, "\n".join(failures)

    # The code scrolls sideways on the phone: it is then a named tab stop, and no stop when it fits.
    code = reply.locator(".codeblock pre").first
    show(page, "light", PHONE)
    page.wait_for_function("pre => pre.tabIndex === 0", arg=code.element_handle())
    assert (code.get_attribute("role"), code.get_attribute("aria-label")) == (
        "group",
        "python code",
    )
    show(page, "light", WIDE)
    page.wait_for_function("pre => !pre.hasAttribute('tabindex')", arg=code.element_handle())


def test_axe_finds_nothing_serious_on_a_failed_reply(page, app_server):
    failures: list[str] = []
    log_in(page, app_server.base_url)
    send(page, "Break please [sim:status=401]")
    page.locator(f"{ASSISTANT} .error-line .retry-button").wait_for()
    for theme in THEMES:
        for size_name, size in SIZES.items():
            show(page, theme, size)
            check_axe(page, f"chat-failed-{theme}-{size_name}", failures)
            shot(page, f"chat-failed-{theme}-{size_name}")
    assert not failures, "\n".join(failures)


def test_axe_is_a_test_asset_that_the_app_never_serves(app_server):
    from django.contrib.staticfiles import finders

    assert AXE_JS.is_file()
    served = [path for finder in finders.get_finders() for path, _ in finder.list([])]
    assert served and not [path for path in served if "axe" in Path(path).name]


# ------------------------------------------------------------------------------------------------
# The keyboard alone


def element(stop: dict | None) -> str:
    return stop["element"] if stop else "(nothing)"


def tab_round(page, limit: int = 80) -> list[dict]:
    """Press Tab from the focused element until the focus is back on it: every stop between."""
    start = focused(page)
    assert start is not None
    stops: list[dict] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        stop = focused(page)
        if stop is None:  # past the last control; the next Tab starts again at the top
            continue
        if stop["element"] == start["element"]:
            return stops
        stops.append(stop)
    raise AssertionError(
        f"Tab never came back to {start['element']}: {[element(s) for s in stops]}"
    )


def press_until(page, key: str, selector: str, limit: int = 30) -> None:
    """Press `key` (Tab or Shift+Tab) until the focus is on `selector`."""
    for _ in range(limit):
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
        page.keyboard.press(key)
    raise AssertionError(f"{key} never reached {selector}")


def shift_tab_to(page, selector: str) -> None:
    press_until(page, "Shift+Tab", selector)


def test_the_chat_works_from_the_keyboard_alone(page, app_server):
    page.goto(f"{app_server.base_url}/")
    show(page, "light", WIDE)

    # The log-in page: the focus starts in the user name; every stop is named and shows focus.
    assert focused(page)["element"].startswith("input#id_username")
    remember_unfocused_look(page)
    assert focus_problems(focused(page)) == []
    login_stops = tab_round(page)
    assert login_stops[0]["name"].rstrip(":") == "Password"
    assert [p for stop in login_stops for p in focus_problems(stop)] == []
    page.keyboard.type("alice")
    page.keyboard.press("Tab")
    page.keyboard.type("correct-horse-battery")
    page.keyboard.press("Enter")
    page.wait_for_selector("#chat-app[data-ready=true]", state="attached")

    # The chat page: the focus starts in the message box, and Tab goes round the whole page,
    # from "Skip to content" at the top, back to it.
    stop = focused(page)
    assert stop["element"].startswith("textarea#composer-input") and stop["name"] == "Message"
    remember_unfocused_look(page)
    assert focus_problems(focused(page)) == []  # the frame around the message box shows it
    stops = tab_round(page)
    names = [s["name"] for s in stops]
    assert "Skip to content" in names, names
    after_top = names[names.index("Skip to content") :]
    for expected in (
        "AI Chat",
        "Dark theme",
        "Log out",
        "New conversation",
        "Search conversations",
    ):
        assert expected in after_top, (expected, after_top)
    assert [p for s in stops for p in focus_problems(s)] == []
    # "Skip to content" skips the top bar: the next Tab lands in the page's main content.
    press_until(page, "Tab", ".skip-link")
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("() => !!document.activeElement.closest('main#main')")
    press_until(page, "Tab", "#composer-input")

    # Typing and Enter send; the reply streams into a polite live region, busy while it grows,
    # and the message box keeps the focus; Escape stops the reply.
    page.keyboard.type("Tell me a long story [sim:tokens=1000,tps=20]")
    page.keyboard.press("Enter")
    streaming = page.locator(f"{ASSISTANT}[data-status=streaming] .message-body")
    streaming.wait_for()
    live = streaming.evaluate(
        """(body) => {
          const region = body.closest('[aria-live]');
          return {
            region: region && region.id,
            live: region && region.getAttribute('aria-live'),
            role: region && region.getAttribute('role'),
            busy: region && region.getAttribute('aria-busy'),
            assertive: !!body.closest('[aria-live=assertive], [role=alert]') ||
              !!body.querySelector('[aria-live], [role=alert], [role=status]'),
            status: document.getElementById('chat-status').getAttribute('role'),
          };
        }"""
    )
    assert live == {
        "region": "message-list",
        "live": "polite",
        "role": "log",
        "busy": "true",
        "assertive": False,
        "status": "status",
    }
    assert focused(page)["element"].startswith("textarea#composer-input")
    page.keyboard.press("Escape")
    page.wait_for_selector(f"{ASSISTANT}[data-status=cancelled]")
    assert page.get_attribute("#message-list", "aria-busy") == "false"
    assert focused(page)["element"].startswith("textarea#composer-input")

    # A reply with code; then Regenerate, reached with Shift+Tab and pressed with Enter.
    page.keyboard.type(SHOWCASE)
    page.keyboard.press("Enter")
    page.wait_for_selector(
        f"{ASSISTANT}[data-status=completed] .message-toolbar .regenerate-button"
    )
    shift_tab_to(page, f"{ASSISTANT}:last-of-type .regenerate-button")
    page.keyboard.press("Enter")
    page.wait_for_selector(f"{ASSISTANT}:last-of-type .version-label")
    page.wait_for_selector(f"{ASSISTANT}[data-status=completed]:last-of-type .regenerate-button")
    switcher = page.locator(f"{ASSISTANT}:last-of-type .versions")
    assert switcher.locator(".version-label").text_content() == "2/2"
    assert (switcher.get_attribute("role"), switcher.get_attribute("aria-label")) == (
        "group",
        "Version 2 of 2",
    )

    # The pressed button went with the old reply: the focus is back in the message box.
    assert focused(page)["element"].startswith("textarea#composer-input")

    # The reply's controls in tab order: the version switcher, the code's copy button, thumbs
    # up and down, copy, Regenerate, and on to the message box.
    remember_unfocused_look(page)
    shift_tab_to(page, f"{ASSISTANT}:last-of-type .version-previous")
    order = []
    for _ in range(12):
        stop = focused(page)
        if stop["element"].startswith("textarea#composer-input"):
            break
        order.append(stop)
        page.keyboard.press("Tab")
    assert [(s["role"], s["name"]) for s in order] == [
        ("button", "Previous version"),
        ("button", "Copy code"),
        ("button", "Good reply"),
        ("button", "Bad reply"),
        ("button", "Copy reply as Markdown"),
        ("button", "Regenerate"),
    ]
    assert [p for s in order for p in focus_problems(s)] == []

    # Every stop of the page with a conversation (its sidebar entry with Pin and Archive, Rename,
    # Delete, Edit on the sent messages, the reply's controls) is named and shows its focus.
    press_until(page, "Tab", "#composer-input")
    remember_unfocused_look(page)
    stops = tab_round(page)
    elements = " ".join(s["element"] for s in stops)
    for part in ("pin-button", "archive-button", "rename-button", "edit-button", "codeblock-copy"):
        assert part in elements, part
    assert [p for s in stops for p in focus_problems(s)] == []

    # Enter on Copy copies the reply's Markdown and says so in the status line.
    shift_tab_to(page, f"{ASSISTANT}:last-of-type .copy-reply-button")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => document.getElementById('chat-status').textContent === 'Copied to the clipboard.'"
    )
    markdown = page.locator(f"{ASSISTANT}:last-of-type").get_attribute("data-markdown")
    assert page.evaluate("() => navigator.clipboard.readText()") == markdown

    # Thumbs up by Space; the button says it is pressed.
    shift_tab_to(page, f"{ASSISTANT}:last-of-type .feedback-up")
    page.keyboard.press("Space")
    page.wait_for_selector(f"{ASSISTANT}:last-of-type .feedback-up[aria-pressed=true]")
    shot(page, "keyboard-reply-toolbar")

    # Reloaded, the server renders the same switcher, and axe finds nothing serious on a page
    # with versions, a stopped reply and a rated one.
    page.reload()
    page.wait_for_selector("#chat-app[data-ready=true]", state="attached")
    assert switcher.get_attribute("aria-label") == "Version 2 of 2"
    failures: list[str] = []
    for theme in THEMES:
        show(page, theme, WIDE)
        check_axe(page, f"chat-versions-{theme}", failures)
    assert not failures, "\n".join(failures)

    # On the phone, dark: the closed drawer's entries are out of the tab order, its menu button is
    # in it, and every stop is still named and shows its focus.
    show(page, "dark", PHONE)
    press_until(page, "Tab", "#composer-input")
    remember_unfocused_look(page)
    stops = tab_round(page)
    elements = [s["element"] for s in stops]
    assert not [e for e in elements if "conversation-link" in e or "new-conversation" in e]
    assert ("button", "Conversations") in [(s["role"], s["name"]) for s in stops]
    assert [p for s in stops for p in focus_problems(s)] == []
