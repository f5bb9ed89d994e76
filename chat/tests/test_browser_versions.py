"""Reply versions and branches on the chat page, in a real Chromium: the "< 2/3 >" switcher of
a regenerated reply, the choice kept across reloads, Edit as a new branch (docs/ui.md)."""

from chat.models import Conversation

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


def test_regenerate_switch_versions_and_edit_a_message(page, app_server, user):
    log_in(page, app_server.base_url)
    send(page, "Hello versions [sim:tokens=5]")
    wait_completed(page, 1)
    send(page, "Second question [sim:tokens=5]")
    wait_completed(page, 2)
    assert page.locator(".versions").count() == 0  # one version each: no switcher
    first_reply = page.locator(ASSISTANT).last.get_attribute("data-message-id")

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
    assert last.locator(".version-label").text_content() == "2/2"
    assert last.locator(".version-next").is_disabled()

    # "<": the first version comes back, and stays chosen after a reload (stored on the server).
    with page.expect_navigation():
        last.locator(".version-previous").click()
    last = page.locator(ASSISTANT).last
    assert last.get_attribute("data-message-id") == first_reply
    assert last.locator(".version-label").text_content() == "1/2"
    page.reload()
    assert page.locator(ASSISTANT).last.get_attribute("data-message-id") == first_reply
    assert page.locator(ASSISTANT).count() == 2
    # ">": back to the second.
    with page.expect_navigation():
        page.locator(ASSISTANT).last.locator(".version-next").click()
    assert page.locator(ASSISTANT).last.get_attribute("data-message-id") == second_reply

    # Edit the first message: a new branch with its own reply; the old branch is one "<" away.
    first_user = page.locator(USER).first
    original_id = first_user.get_attribute("data-message-id")
    first_user.locator(".edit-button").click()
    editor = first_user.locator(".edit-input")
    assert editor.input_value() == "Hello versions [sim:tokens=5]"
    editor.fill("Hello again, edited [sim:tokens=5]")
    with page.expect_navigation():
        editor.press("Enter")
    wait_completed(page, 1)
    assert page.locator(USER).count() == 1
    edited = page.locator(USER).first
    assert edited.locator(".message-body").text_content() == "Hello again, edited [sim:tokens=5]"
    assert edited.locator(".version-label").text_content() == "2/2"
    with page.expect_navigation():
        edited.locator(".version-previous").click()
    assert page.locator(USER).first.get_attribute("data-message-id") == original_id
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
