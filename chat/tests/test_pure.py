"""Pure helpers: token estimates, history trimming, SSE framing, Markdown rendering."""

import json

import pytest

from chat.llm import MalformedChunk, cached_tokens_of, read_chunk, translate_fault
from chat.rendering import render_markdown
from chat.services import fallback_title
from chat.sse import sse_comment, sse_event
from chat.tokens import estimate_messages_tokens, estimate_text_tokens, trim_history


def test_token_estimate_is_never_zero_for_text_and_grows_with_it():
    assert estimate_text_tokens("") == 0
    assert estimate_text_tokens("hi") == 1
    short = estimate_text_tokens("The quick brown fox jumps over the lazy dog.")
    assert 9 <= short <= 14  # about what a BPE tokenizer gives (10)
    assert estimate_text_tokens("word " * 1000) >= 1000
    assert estimate_text_tokens("数据库连接池") == 6


def test_messages_estimate_counts_per_message_overhead():
    messages = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": ""}]
    assert estimate_messages_tokens(messages) == estimate_text_tokens("hello") + 8


def test_trim_history_drops_the_oldest_first_and_keeps_the_newest():
    history = [{"role": "user", "content": f"message {i} " + "x" * 400} for i in range(10)]
    kept = trim_history(history, budget=300)
    assert kept == history[-len(kept) :]
    assert 1 <= len(kept) < 10
    assert trim_history(history[:1], budget=1) == history[:1]


def test_sse_event_framing_is_one_data_line():
    frame = sse_event("delta", {"text": "a\nb"}, event_id=3).decode()
    assert frame == 'id: 3\nevent: delta\ndata: {"text":"a\\nb"}\n\n'
    assert json.loads(frame.splitlines()[2][6:]) == {"text": "a\nb"}
    assert sse_comment("ping") == b": ping\n\n"


def test_markdown_is_rendered_and_sanitised():
    html = render_markdown(
        "# Title\n\n**bold** <script>alert(1)</script> <img src=x onerror=alert(1)>\n\n"
        "[link](javascript:alert(1)) [ok](https://example.com)\n\n```python\nprint('hi')\n```"
    )
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html
    # Raw HTML from the model is shown as text, never as markup.
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html and "&lt;img" in html
    assert 'href="javascript' not in html
    assert 'href="https://example.com"' in html and 'rel="noopener noreferrer nofollow"' in html
    assert '<pre><code class="language-python">' in html


def test_fallback_title_is_the_first_words():
    assert fallback_title("How do I pool database connections in Django under ASGI?") == (
        "How do I pool database connections…"
    )
    assert fallback_title("Hi") == "Hi"


def test_read_chunk_takes_choice_zero_finish_reason_and_usage():
    chunk = read_chunk(
        {
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": "Hel"}},
                {"index": 1, "delta": {"content": "other choice"}, "finish_reason": "stop"},
            ],
        }
    )
    assert (chunk.content, chunk.finish_reason, chunk.usage) == ("Hel", None, None)
    end = read_chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    assert (end.content, end.finish_reason) == ("", "stop")
    usage = {"prompt_tokens": 12, "completion_tokens": 3, "prompt_tokens_details": None}
    last = read_chunk({"choices": [], "usage": usage})
    assert last.usage == usage and cached_tokens_of(last.usage) == 0
    assert cached_tokens_of({**usage, "prompt_tokens_details": {"cached_tokens": 8}}) == 8
    assert cached_tokens_of({**usage, "prompt_cache_hit_tokens": 5}) == 5  # DeepSeek
    # Usage with nulls or missing counts is unknown (estimated later), not a malformed chunk.
    for odd in (
        {"prompt_tokens": 12, "completion_tokens": None},
        {"prompt_tokens": "12", "completion_tokens": 3},
        {"prompt_tokens": 12},
    ):
        assert read_chunk({"choices": [], "usage": odd}).usage is None
    assert cached_tokens_of({**usage, "prompt_tokens_details": {"cached_tokens": None}}) == 0
    # Servers that send "usage": null, "content": null or no delta at all.
    assert read_chunk({"choices": [{"index": 0, "delta": {"content": None}}], "usage": None})
    assert read_chunk({"choices": [{"index": 0}]}).content == ""


@pytest.mark.parametrize(
    "data",
    [
        [],
        "text",
        {"choices": {"index": 0}},
        {"choices": ["x"]},
        {"choices": [{"index": 0, "delta": "text"}]},
        {"choices": [{"index": 0, "delta": {"content": 7}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": 1}]},
        {"choices": [], "usage": "many"},
    ],
)
def test_a_chunk_of_the_wrong_shape_is_an_upstream_malformed_fault(data):
    with pytest.raises(MalformedChunk) as caught:
        read_chunk(data)
    fault = translate_fault(caught.value, text_started=True)
    assert (fault.code, fault.retryable) == ("upstream_malformed", True)
