"""The chat page's finer points in a real Chromium: the composer during a reply, waiting states,
code blocks with highlighting and copy buttons, one footer layout, icons, the dark theme."""

import pytest

from .browser import ASSISTANT, BROWSER_MARKS, log_in, send

pytestmark = BROWSER_MARKS


def active_id(page) -> str:
    return page.evaluate("() => document.activeElement && document.activeElement.id")


def test_typing_the_next_question_during_a_reply_neither_stops_it_nor_loses_it(page, app_server):
    log_in(page, app_server.base_url)
    send(page, "A long answer please [sim:tokens=1000,tps=20]")  # 50 s: it streams throughout
    reply = page.locator(ASSISTANT).last
    page.wait_for_function(
        "el => el.textContent.length > 10", arg=reply.locator(".message-body").element_handle()
    )
    # The composer keeps the focus and stays editable; Send shows Stop.
    assert active_id(page) == "composer-input"
    assert page.locator("#composer-input").is_enabled()
    assert (
        page.locator("#stop-button").is_visible() and not page.locator("#send-button").is_visible()
    )

    page.keyboard.type("My next question")
    body = reply.locator(".message-body").element_handle()
    before = body.evaluate("el => el.textContent.length")
    page.keyboard.press("Enter")  # sends nothing, stops nothing: the reply goes on growing
    page.wait_for_function("([el, n]) => el.textContent.length > n + 60", arg=[body, before])
    assert reply.get_attribute("data-status") == "streaming"
    assert page.input_value("#composer-input") == "My next question"
    assert page.locator(".message[data-role=user]").count() == 1
    assert page.locator(".message-badge").count() == 0

    page.keyboard.press("Escape")  # Escape stops
    page.wait_for_selector(f"{ASSISTANT}[data-status=cancelled]")
    assert page.input_value("#composer-input") == "My next question"
    assert active_id(page) == "composer-input"

    page.keyboard.press("Enter")  # now it is sent
    page.wait_for_function(
        "() => document.querySelectorAll('.message[data-role=user]').length === 2"
    )
    assert page.input_value("#composer-input") == ""


# Records each state the new reply passes through, as (waiting kind, text length, the waiting
# line's words), the moment
# the DOM changes: a MutationObserver's callback sees the DOM after the script that changed it,
# so a token that removes a notice and adds text shows as one state. Assertions then read the
# whole history rather than racing the page with timeouts (a busy CI machine delays a page's
# first paint by more than a second).
RECORD_WAITING_STATES = """() => {
  window.__states = [];
  const record = () => {
    const article = [...document.querySelectorAll('.message[data-role=assistant]')].pop();
    if (!article) return;
    const waiting = article.querySelector('.message-waiting');
    const state = [waiting ? waiting.dataset.waiting : '',
                   article.querySelector('.message-body').textContent.length,
                   waiting ? waiting.textContent : ''];
    const last = window.__states[window.__states.length - 1];
    if (!last || last.some((v, i) => v !== state[i])) window.__states.push(state);
  };
  new MutationObserver(record).observe(document.body,
    {subtree: true, childList: true, characterData: true, attributes: true});
}"""


@pytest.fixture(scope="module")
def patient_server(django_db_setup, django_db_blocker, simulator, tmp_path_factory):
    """The app giving up on an upstream silent for 6 s (the shared test server: 1.5 s), so that
    the silences below are far from that limit on a busy machine, and the notice comes at 2 s."""
    from devtools.live import app_env, run_app_server

    with django_db_blocker.unblock():
        env = app_env(simulator, AI_STREAM_IDLE_TIMEOUT_SECONDS="6")
    with run_app_server(env=env, log_dir=tmp_path_factory.mktemp("daphne-patient")) as server:
        yield server


def test_thinking_until_the_first_token_and_a_notice_while_the_model_is_silent(
    page, patient_server
):
    log_in(page, patient_server.base_url)
    # The notice comes after a third of the server's 6 s: 2 s. 3 s to the first token, then one
    # every 3 s: silences a second past the notice and 3 s short of the server's limit.
    assert page.get_attribute("#chat-app", "data-stall-notice-ms") == "2000"
    assert page.locator(ASSISTANT).count() == 0
    page.evaluate(RECORD_WAITING_STATES)
    send(page, "Slow model [sim:ttft=3000,tokens=3,tps=0.33]")
    reply = page.locator(ASSISTANT).last
    page.wait_for_selector(f"{ASSISTANT}[data-status=completed]", timeout=30_000)
    assert reply.locator(".message-waiting").count() == 0

    recorded = page.evaluate("() => window.__states")
    words = {kind: text for kind, _, text in recorded if kind}
    assert "Thinking" in words["thinking"], recorded
    assert "Still waiting for the model" in words["stalled"], recorded
    states = [(kind, n) for kind, n, _ in recorded]
    texts = [n for _, n in states]
    assert texts == sorted(texts) and texts[-1] > 0, states  # the text only grows
    # "Thinking" before any text, gone in the instant the first text came.
    shown = [kind for kind, _ in states if kind]
    assert shown[0] == "thinking", states
    assert [kind for kind, n in states if n == 0 and kind] == ["thinking"], states
    first_text = next(state for state in states if state[1] > 0)
    assert first_text[0] == "", states
    assert "thinking" not in [kind for kind, n in states if n > 0], states
    # The notice came during a silence (no text changed while it showed), and each notice was
    # gone in the instant the next text came: every growth of the text shows no waiting state.
    assert ("stalled", first_text[1]) in states, states
    grew = [states[i][0] for i in range(1, len(states)) if states[i][1] > states[i - 1][1]]
    assert grew and set(grew) == {""}, states
    assert states[-1][0] == "", states


def _question_with_python_code(tokens: int = 90, ends_within: float = 1.0, tps: int = 0) -> str:
    """A message whose simulated reply (deterministic) has a ```python block, closed within the
    first `ends_within` of the reply's text."""
    from devtools.simulator.replies import generate_reply

    for n in range(400):
        text = f"Show me an example {n}"  # no showcase keyword: an ordinary reply
        reply = generate_reply(text, "gpt-4o-mini", tokens)
        if "```python" in reply and reply.rfind("```") < ends_within * len(reply):
            return f"{text} [sim:tokens={tokens}{f',tps={tps}' if tps else ''}]"
    raise AssertionError("no seed gives a code block")


def _footer_layout(page, article) -> list[str]:
    return article.evaluate(
        """el => [...el.querySelectorAll('.message-footer .message-stats, .message-footer button')]
              .map(n => n.classList.contains('message-stats') ? 'stats'
                   : [...n.classList].find(c => /^(feedback-up|feedback-down|copy-reply-button|regenerate-button)$/.test(c)))"""
    )


def read_clipboard(page) -> str:
    return page.evaluate("() => navigator.clipboard.readText()")


def test_code_blocks_are_highlighted_and_copied_and_replies_look_the_same_after_reload(
    page, app_server
):
    log_in(page, app_server.base_url)
    send(page, _question_with_python_code())
    page.wait_for_selector(f"{ASSISTANT}[data-status=completed] .message-stats")
    reply = page.locator(ASSISTANT).last

    block = reply.locator(".codeblock")
    assert block.locator(".codeblock-lang").text_content() == "python"
    assert block.locator("span.k").first.text_content() == "def"  # Pygments classes
    color = block.locator("span.k").first.evaluate("el => getComputedStyle(el).color")
    assert color != reply.locator(".message-body").evaluate("el => getComputedStyle(el).color")

    block.locator(".codeblock-copy").click()
    page.wait_for_function("() => document.querySelector('.codeblock-copy.is-copied')")
    assert read_clipboard(page) == (
        'def summarize(items):\n    return {"count": len(items), "first": items[:1]}\n'
    )

    reply.locator(".copy-reply-button").click()
    page.wait_for_function("() => document.querySelector('.copy-reply-button.is-copied')")
    copied = read_clipboard(page)
    assert copied.startswith('You asked about "Show me an example') and "```python\n" in copied
    assert "- **" in copied  # the Markdown, not the rendered text

    # Icons are inline SVG (emoji render as empty boxes without an emoji font).
    for selector in (".feedback-up", ".feedback-down", ".copy-reply-button", ".regenerate-button"):
        button = reply.locator(selector)
        assert button.locator("svg").count() == 1, selector
        assert not any(ord(ch) > 0x2000 for ch in button.text_content()), selector
    live = _footer_layout(page, reply)
    assert live == [
        "stats",
        "feedback-up",
        "feedback-down",
        "copy-reply-button",
        "regenerate-button",
    ]

    page.reload()
    reply = page.locator(ASSISTANT).last
    assert _footer_layout(page, reply) == live
    assert reply.locator(".codeblock .codeblock-copy").count() == 1
    reply.locator(".copy-reply-button").click()
    page.wait_for_function("() => document.querySelector('.copy-reply-button.is-copied')")
    assert read_clipboard(page) == copied


@pytest.fixture
def stored_markdown_reply(user):
    """A finished conversation whose reply has strikethrough and a table (rendered as stored)."""
    from chat.models import Conversation, Message
    from chat.rendering import render_markdown

    content = "Not ~~this~~ but that.\n\n| Item | Price |\n|:--|--:|\n| Tea | 3 |\n"
    conversation = Conversation.objects.create(user=user, title="Prices")
    question = Message.objects.create(
        conversation=conversation, role=Message.Role.USER, content="Prices?", status="completed"
    )
    Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        reply_to=question,
        content=content,
        html=render_markdown(content),
        status="completed",
        model="gpt-4o-mini",
    )
    return conversation, content


def test_strikethrough_and_table_alignment_show_under_the_csp(
    page, app_server, stored_markdown_reply
):
    conversation, content = stored_markdown_reply
    log_in(page, app_server.base_url)
    page.goto(f"{app_server.base_url}{conversation.get_absolute_url()}")
    body = page.locator(f"{ASSISTANT} .message-body")
    strike = body.locator("s")
    assert strike.text_content() == "this"
    assert "line-through" in strike.evaluate("el => getComputedStyle(el).textDecorationLine")
    price = body.locator("td").nth(1)
    assert price.evaluate("el => getComputedStyle(el).textAlign") == "right"
    page.locator(".copy-reply-button").click()
    page.wait_for_function("() => document.querySelector('.copy-reply-button.is-copied')")
    assert read_clipboard(page) == content


def _background(page) -> str:
    return page.evaluate("() => getComputedStyle(document.body).backgroundColor")


def test_the_theme_follows_the_system_and_the_toggle_is_remembered(browser, app_server, user):
    context = browser.new_context(color_scheme="dark")
    page = context.new_page()
    # Record the theme at the moment <body> is parsed, i.e. before anything is painted.
    page.add_init_script(
        """new MutationObserver((changes, observer) => {
             if (document.body) {
               window.themeAtBody = document.documentElement.dataset.theme || 'none';
               observer.disconnect();
             }
           }).observe(document, {childList: true, subtree: true});"""
    )
    try:
        log_in(page, app_server.base_url)
        assert page.evaluate("() => window.themeAtBody") == "dark"
        dark = _background(page)
        assert dark == "rgb(15, 17, 21)"

        page.click("#theme-toggle")
        assert page.evaluate("() => document.documentElement.dataset.theme") == "light"
        assert _background(page) == "rgb(246, 247, 249)"
        assert page.get_attribute("#theme-toggle", "aria-pressed") == "false"

        page.reload()  # remembered, against the system's dark preference, from the first paint
        assert page.evaluate("() => window.themeAtBody") == "light"
        assert _background(page) == "rgb(246, 247, 249)"
        page.click("#theme-toggle")
        page.reload()
        assert page.evaluate("() => window.themeAtBody") == "dark"
        assert page.get_attribute("#theme-toggle", "aria-pressed") == "true"
    finally:
        context.close()


def test_a_focused_copy_button_keeps_the_focus_while_the_reply_is_written_and_finished(
    page, app_server
):
    log_in(page, app_server.base_url)
    # 200 tokens at 20 a second: the code block is done after about a third of the 10 s.
    send(page, _question_with_python_code(tokens=200, ends_within=0.5, tps=20))
    page.wait_for_selector(f"{ASSISTANT}[data-status=streaming] .codeblock-copy")
    status = page.evaluate(
        """() => { const button = document.querySelector('.message[data-role=assistant]'
                     + ' .codeblock-copy'); button.focus();
                   return button.closest('.message').dataset.status; }"""
    )
    assert status == "streaming"
    # The reply's text goes on growing, then its body is made again from the server's HTML: the
    # focus stays on the code block's copy button, which Enter still presses.
    page.wait_for_selector(f"{ASSISTANT}[data-status=completed] .message-stats")
    assert page.evaluate(
        "() => document.activeElement.matches('.message[data-role=assistant] .codeblock-copy')"
    )
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => document.getElementById('chat-status').textContent === 'Copied to the clipboard.'"
    )
