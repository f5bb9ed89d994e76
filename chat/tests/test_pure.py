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


def test_a_branch_transcript_keeps_the_first_and_the_latest_messages():
    from chat.cleaning import clean_generated_title
    from chat.titles import MESSAGE_CHARS, TRANSCRIPT_CHARS, branch_transcript

    assert branch_transcript([]) == ""
    assert branch_transcript([("user", "[sim:tokens=5]")]) == ""  # only a marker: nothing
    assert (
        branch_transcript(
            [
                ("user", "Why  is\nthe sky blue? [sim:tokens=5]"),
                ("assistant", "Rayleigh scattering."),
            ]
        )
        == "User: Why is the sky blue?\n\nAssistant: Rayleigh scattering."
    )

    turns = [("user", "first question")] + [
        (role, f"{role} {n} " + "x" * 2000) for n in range(20) for role in ("assistant", "user")
    ]
    transcript = branch_transcript(turns)
    parts = transcript.split("\n\n")
    assert parts[0] == "User: first question"
    assert parts[-1].startswith("User: user 19 ")  # the latest message is in
    assert len(transcript) <= TRANSCRIPT_CHARS
    assert all(len(part) <= len("Assistant: ") + MESSAGE_CHARS for part in parts)
    # The middle is left out: the second message (assistant 0) is not in.
    assert 2 < len(parts) < len(turns) and not parts[1].startswith("Assistant: assistant 0 ")

    assert clean_generated_title(' "**Sky  colours.**" ') == "Sky colours"
    assert clean_generated_title("`  `") == ""
    assert len(clean_generated_title("word " * 40)) <= 80
