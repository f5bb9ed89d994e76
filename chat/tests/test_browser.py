"""A real Chromium (Debian's, driven by Playwright) uses the chat page end to end."""

import pytest

from .browser import ASSISTANT, BROWSER_MARKS, log_in, send

pytestmark = BROWSER_MARKS


def test_chat_streams_stops_and_regenerates(page, app_server, user):
    log_in(page, app_server.base_url)

    # 1. The reply grows on the page before it is complete.
    send(page, "Hello browser [sim:tokens=150,tps=40]")
    reply = page.locator(ASSISTANT).last
    body = reply.locator(".message-body")
    # Every (status, text length) the reply passes through, recorded in the page as the DOM
    # changes, read once it is complete: no race with the stream's timing.
    body.evaluate(
        """el => { const article = el.closest('.message'); window.__grew = [];
          new MutationObserver(() => window.__grew.push([article.dataset.status,
            el.textContent.length])).observe(article,
            {subtree: true, childList: true, characterData: true, attributes: true}); }"""
    )
    page.wait_for_selector(f"{ASSISTANT}[data-status=completed] .message-stats")
    seen = page.evaluate("() => window.__grew")
    streaming = [n for status, n in seen if status == "streaming" and n > 0]
    assert len(set(streaming)) >= 2, f"the reply did not grow while streaming: {seen}"
    assert streaming == sorted(streaming), seen
    stats = reply.locator(".message-stats").text_content()
    assert "gpt-4o-mini" in stats and "150" in stats and "tok/s" in stats
    assert page.url.rstrip("/").split("/")[-2] == "c"  # the page moved to the conversation URL

    # 2. Stop a reply: it ends as stopped and keeps its partial text.
    # 10 s: far from done when stopped; its regeneration (below) streams the same 10 s.
    send(page, "A long one to stop [sim:tokens=400,tps=40]")
    page.wait_for_function(f"() => document.querySelectorAll('{ASSISTANT}').length === 2")
    stopping = page.locator(ASSISTANT).last
    page.wait_for_function(
        "el => el.textContent.length > 10",
        arg=stopping.locator(".message-body").element_handle(),
    )
    page.click("#stop-button")
    page.wait_for_selector(f"{ASSISTANT}[data-status=cancelled]")
    assert stopping.locator(".message-badge").text_content() == "Stopped"
    partial = stopping.locator(".message-body").text_content()
    assert 10 < len(partial) < 3000

    # 3. Regenerate the last reply: a new reply replaces it and completes.
    old_id = stopping.get_attribute("data-message-id")
    page.click(f"{ASSISTANT} >> nth=-1 >> .regenerate-button")
    page.wait_for_function(
        "id => { const r = [...document.querySelectorAll('.message[data-role=assistant]')].pop();"
        " return r && r.dataset.messageId !== id && r.dataset.status === 'completed'; }",
        arg=old_id,
        timeout=40_000,
    )
    assert page.locator(f".message[data-message-id='{old_id}']").count() == 0

    # 4. Rate the first reply (thumbs down, with a comment), then change it to thumbs up.
    first = page.locator(ASSISTANT).first
    first.locator(".feedback-down").click()
    page.wait_for_selector(f"{ASSISTANT} >> nth=0 >> .feedback-comment")
    first.locator(".feedback-comment-input").fill("Too short")
    first.locator(".feedback-comment button[type=submit]").click()
    page.wait_for_selector(".feedback-thanks")
    # The comment box went with the focus in it: the focus is on the pressed thumb.
    page.wait_for_function(
        "() => document.activeElement.matches('.feedback-down[aria-pressed=true]')"
    )
    first.locator(".feedback-up").click()
    page.wait_for_function(
        "() => document.querySelector('.message[data-role=assistant]').dataset.feedback === 'up'"
    )

    # 5. After a reload the server-rendered page shows the same conversation and the rating.
    page.reload()
    assert page.locator(ASSISTANT).count() == 2
    assert page.locator(".error-line").count() == 0
    assert (
        page.locator(ASSISTANT).first.locator(".feedback-up").get_attribute("aria-pressed")
        == "true"
    )
    first_id = page.locator(ASSISTANT).first.get_attribute("data-message-id")
    stored = page.request.get(f"{app_server.base_url}/api/messages/{first_id}").json()
    assert stored["feedback"]["rating"] == "up" and stored["feedback"]["comment"] == "Too short"


def test_a_failed_reply_shows_an_error_line_with_retry(page, app_server, user):
    log_in(page, app_server.base_url)
    send(page, "Break please [sim:status=401]")
    page.wait_for_selector(".error-line")
    line = page.locator(".error-line").text_content()
    assert "credentials" in line
    assert "sk-test" not in page.content()
    assert page.locator(".retry-button").count() >= 1
    # No model title after a failed first reply: the first words stay, without the marker.
    page.reload()
    assert page.locator("#conversation-title").text_content() == "Break please"
    assert page.locator(".conversation-link.is-current").text_content() == "Break please"


def test_partial_text_with_emoji_survives_a_failure_intact(page, app_server, user):
    # Offsets count code points; the page must not split an emoji (UTF-16 surrogate pairs).
    log_in(page, app_server.base_url)
    send(page, "Hi 😀 there 🎉 friend [sim:malformed,after=12,tps=40]")
    page.wait_for_selector(".error-line")
    partial = page.locator(f"{ASSISTANT} .message-body").last.text_content()
    assert "Hi 😀 there 🎉 friend" in partial, partial
    assert "\ufffd" not in partial


@pytest.fixture
def tight_quota(user):
    """A daily token quota that admits the first message below and nothing after it."""
    from analytics import quotas
    from analytics.quotas.models import UsageQuota

    from .test_quotas_live import worst_tokens

    quotas.backend().clear()
    yield UsageQuota.objects.create(
        user=user, tokens_per_day=worst_tokens("First [sim:tokens=20]") + 10
    )
    quotas.backend().clear()


def test_a_reached_quota_is_explained_and_the_typed_text_kept(tight_quota, page, app_server):
    log_in(page, app_server.base_url)
    quota = page.locator("#quota-status")
    assert quota.is_visible()
    before = quota.text_content()
    assert "tokens left today" in before

    send(page, "First [sim:tokens=20]")
    page.wait_for_selector(f"{ASSISTANT}[data-status=completed]")
    page.wait_for_function(
        "before => document.querySelector('#quota-status').textContent !== before",
        arg=before,
    )

    send(page, "Second question that no longer fits")
    error = page.locator("#composer-errors .error-line")
    error.wait_for()
    assert "daily quota" in error.text_content() and "resets at" in error.text_content()
    assert page.input_value("#composer-input") == "Second question that no longer fits"
    assert page.locator("#composer-input").is_enabled()
    assert page.locator(".message[data-role=user]").count() == 1  # nothing was stored
