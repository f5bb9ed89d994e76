"""Pure helpers: SSE framing, Markdown rendering, fallback titles."""

import json

from chat.rendering import render_markdown
from chat.services import fallback_title
from chat.sse import sse_comment, sse_delta, sse_event


def test_sse_event_framing_is_one_data_line():
    frame = sse_event("delta", {"text": "a\nb"}, event_id=3).decode()
    assert frame == 'id: 3\nevent: delta\ndata: {"text":"a\\nb"}\n\n'
    assert json.loads(frame.splitlines()[2][6:]) == {"text": "a\nb"}
    assert sse_comment("ping") == b": ping\n\n"


def test_delta_framing_is_the_general_framing_byte_for_byte():
    texts = [
        "",
        " hello",
        'quote " and \\ backslash',
        "a\nb\r\tc",
        "é ✓ 𝄞 \u2028\u2029",
        "\x00\x1f",
    ]
    for offset, text in enumerate(texts):
        assert sse_delta(text, offset * 1000) == sse_event(
            "delta", {"text": text}, event_id=offset * 1000
        )


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


def test_fallback_title_leaves_out_bracketed_markers():
    # The title a conversation keeps when its first reply failed (no model title is asked for).
    assert fallback_title("Break please [sim:status=401]") == "Break please"
    assert fallback_title("[sim:tokens=150,tps=40] Hello there") == "Hello there"
    assert fallback_title("Hi [sim:malformed,after=12] you [ref:3] all") == "Hi you all"
    assert fallback_title("[sim:status=500]") == "New conversation"
    # Ordinary brackets stay: only `[word:...]` is a marker.
    assert fallback_title("Explain [1, 2] and [Note] x") == "Explain [1, 2] and [Note] x"
