"""Reply versions and branches on the chat page, in a real Chromium: the "< 2/3 >" switcher of
a regenerated reply, the choice kept across reloads, Edit as a new branch (docs/ui.md)."""

from chat.models import Conversation, Message

from .browser import ASSISTANT, BROWSER_MARKS, log_in, send

pytestmark = BROWSER_MARKS

USER = ".message[data-role=user]"


def wait_completed(page, count: int):
    page.wait_for_function(
        "n => { const r = document.querySelectorAll('.message[data-role=assistant]');"
        " return r.length === n && r[n - 1].dataset.status === 'completed'; }",
        arg=count,
        timeout=40_000,
    )


def mark_page(page):
    """Set a marker that only a navigation (a reload, another URL) would remove."""
    page.evaluate("() => { window.__noReload = 1; }")


def still_same_page(page) -> bool:
    return page.evaluate("() => window.__noReload === 1")


def shown(page) -> list[tuple]:
    """What the list shows: each message's id, role, status, switcher label and text."""
    return page.evaluate(
        """() => [...document.querySelectorAll('#message-list .message')].map((m) => [
            m.dataset.messageId, m.dataset.role, m.dataset.status,
            (m.querySelector('.version-label') || {}).textContent || '',
            m.querySelector('.message-body').textContent.trim(),
        ])"""
    )


def focused_class(page) -> str:
    return page.evaluate("() => document.activeElement.className")


def test_regenerate_switch_versions_and_edit_a_message(page, app_server, user):
    log_in(page, app_server.base_url)
    send(page, "Hello versions [sim:tokens=5]")
    wait_completed(page, 1)
    send(page, "Second question [sim:tokens=5]")
    wait_completed(page, 2)
    assert page.locator(".versions").count() == 0  # one version each: no switcher
    first_reply = page.locator(ASSISTANT).last.get_attribute("data-message-id")
    first_text = page.locator(ASSISTANT).last.locator(".message-body").text_content()

    # Regenerate: the new reply replaces the old one on the page and says it is version 2 of 2.
    page.click(f"{ASSISTANT} >> nth=-1 >> .regenerate-button")
    page.wait_for_function(
        "id => { const r = [...document.querySelectorAll('.message[data-role=assistant]')].pop();"
        " return r.dataset.messageId !== id && r.dataset.status === 'completed'; }",
        arg=first_reply,
        timeout=40_000,
    )
    last = page.locator(ASSISTANT).last
    second_reply = last.get_attribute("data-message-id")
    second_text = last.locator(".message-body").text_content()
    assert last.locator(".version-label").text_content() == "2/2"
    assert last.locator(".version-next").is_disabled()

    # "<": the first version comes back in place (no navigation: the marker survives), with its
    # own text, the focus on the switcher; it stays chosen after a reload (stored on the server).
    mark_page(page)
    last.locator(".version-previous").click()
    page.wait_for_selector(f"{ASSISTANT}[data-message-id='{first_reply}']")
    assert still_same_page(page)
    last = page.locator(ASSISTANT).last
    assert last.locator(".version-label").text_content() == "1/2"
    # The simulator answers the same question with the same text: the stored one is shown.
    assert last.locator(".message-body").text_content() == first_text
    assert last.get_attribute("data-markdown") == Message.objects.get(pk=first_reply).content
    assert "version-next" in focused_class(page)  # "<" is disabled now: the other arrow
    assert last.locator(".regenerate-button").count() == 1  # the last reply's footer, whole
    before_reload = shown(page)
    page.reload()
    page.wait_for_selector("#chat-app[data-ready=true]", state="attached")
    assert shown(page) == before_reload
    # ">" by keyboard: back to the second, in place.
    mark_page(page)
    page.locator(ASSISTANT).last.locator(".version-next").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(f"{ASSISTANT}[data-message-id='{second_reply}']")
    assert still_same_page(page)
    assert page.locator(ASSISTANT).last.locator(".version-label").text_content() == "2/2"
    assert page.locator(ASSISTANT).last.locator(".message-body").text_content() == second_text
    assert "version-previous" in focused_class(page)

    # Edit the first message: a new branch whose reply streams in place; the old branch is one
    # "<" away.
    first_user = page.locator(USER).first
    original_id = first_user.get_attribute("data-message-id")
    streams = []  # GETs of a reply's stream_url: none, the edit's response carries its reply
    page.on("request", lambda r: r.url.endswith("/stream") and streams.append(r.url))
    first_user.locator(".edit-button").click()
    editor = first_user.locator(".edit-input")
    assert editor.input_value() == "Hello versions [sim:tokens=5]"
    editor.fill("Hello again, edited [sim:tokens=60,tps=15]")
    editor.press("Enter")
    # The new reply is followed as it is written: some text while it is still streaming.
    page.wait_for_function(
        "() => { const r = document.querySelectorAll('.message[data-role=assistant]');"
        " return r.length === 1 && r[0].dataset.status === 'streaming'"
        " && r[0].querySelector('.message-body').textContent.trim().length > 0; }",
        timeout=20_000,
    )
    assert page.locator("#stop-button").is_visible()
    wait_completed(page, 1)
    assert still_same_page(page)
    assert page.locator(USER).count() == 1
    edited = page.locator(USER).first
    assert (
        edited.locator(".message-body").text_content()
        == "Hello again, edited [sim:tokens=60,tps=15]"
    )
    assert edited.locator(".version-label").text_content() == "2/2"
    assert edited.locator(".edit-button").count() == 1
    reply = page.locator(ASSISTANT).first
    assert reply.locator(".message-stats").count() == 1
    assert len(reply.get_attribute("data-markdown").split()) == 60  # the whole reply, streamed
    assert (
        reply.get_attribute("data-markdown")
        == Message.objects.get(pk=reply.get_attribute("data-message-id")).content
    )
    assert streams == []
    before_reload = shown(page)
    page.reload()
    page.wait_for_selector("#chat-app[data-ready=true]", state="attached")
    assert shown(page) == before_reload

    mark_page(page)
    page.locator(USER).first.locator(".version-previous").click()
    page.wait_for_selector(f"{USER}[data-message-id='{original_id}']")
    assert still_same_page(page)
    assert page.locator(USER).count() == 2
    assert page.locator(ASSISTANT).last.get_attribute("data-message-id") == second_reply
    conversation = Conversation.objects.get(user=user)
    assert conversation.current_leaf_id == int(second_reply)


def test_edit_can_be_cancelled_and_switching_waits_for_a_reply(page, app_server, user):
    log_in(page, app_server.base_url)
    send(page, "One [sim:tokens=5]")
    wait_completed(page, 1)
    page.click(f"{ASSISTANT} >> nth=-1 >> .regenerate-button")
    page.wait_for_selector(f"{ASSISTANT} .version-label")
    wait_completed(page, 1)
    user_message = page.locator(USER).first
    user_message.locator(".edit-button").click()
    user_message.locator(".edit-input").press("Escape")
    assert user_message.locator(".edit-form").count() == 0
    assert user_message.locator(".message-body").is_visible()
    # The box went with the focus in it: the focus is back on the Edit button that opened it.
    page.wait_for_function(
        "m => document.activeElement === m.querySelector('.edit-button')",
        arg=user_message.element_handle(),
    )

    # An edit the server refuses (empty), sent with Enter: the box was disabled while it was sent
    # (Chromium then moves the focus to the page); with the error it is enabled and focused again.
    user_message.locator(".edit-button").click()
    box = user_message.locator(".edit-input")
    box.fill("")
    box.press("Enter")
    page.wait_for_selector("#composer-errors .error-line")
    page.wait_for_function(
        "m => { const box = m.querySelector('.edit-input');"
        " return !box.disabled && document.activeElement === box; }",
        arg=user_message.element_handle(),
    )
    box.press("Escape")

    # A reply being written: the arrows refuse with a message instead of switching.
    send(page, "A long one [sim:tokens=2000,tps=20]")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.message[data-role=assistant]')].pop()"
        ".dataset.status === 'streaming'"
    )
    page.locator(ASSISTANT).first.locator(".version-previous").click()
    page.wait_for_selector("#composer-errors .error-line")
    assert "Wait for the reply" in page.locator("#composer-errors").text_content()
    page.click("#stop-button")
    page.wait_for_selector(f"{ASSISTANT}[data-status=cancelled]")
