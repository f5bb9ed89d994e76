"""Markdown through the real renderer: strikethrough, tables, highlighted code blocks."""

from pathlib import Path

from chat import highlighting
from chat.rendering import render_markdown


def test_strikethrough_survives_the_sanitiser():
    html = render_markdown("This is ~~wrong~~ right.")
    assert "<s>wrong</s>" in html
    # Raw <s> typed by the model is still only text.
    assert "&lt;s&gt;" in render_markdown("<s>raw</s>")


def test_tables_keep_their_structure_and_alignment_as_classes():
    html = render_markdown("| Left | Right | Mid |\n|:--|--:|:-:|\n| a | 1 | x |\n| b | 2 | y |\n")
    for tag in ("<table>", "<thead>", "<tbody>", "<tr>", "</table>"):
        assert tag in html
    assert '<th class="align-left">Left</th>' in html
    assert '<td class="align-right">2</td>' in html
    assert '<td class="align-center">y</td>' in html
    assert "style=" not in html  # the CSP forbids inline styles: alignment is a class


def test_a_code_block_is_labelled_and_highlighted_with_classes():
    html = render_markdown('```python\ndef f():\n    return "<b>"\n```')
    assert '<span class="codeblock-lang">python</span>' in html
    assert '<pre><code class="language-python">' in html
    assert '<span class="k">def</span>' in html and '<span class="nf">f</span>' in html
    assert "&lt;b&gt;" in html and "<b>" not in html
    assert "style=" not in html


def test_unknown_or_missing_languages_are_shown_plain_with_a_label():
    unknown = render_markdown("```nosuchlang\nx < y\n```")
    assert '<span class="codeblock-lang">nosuchlang</span>' in unknown
    assert "x &lt; y" in unknown and '<span class="' not in unknown.split("<pre>")[1]
    plain = render_markdown("```\nplain\n```")
    assert '<span class="codeblock-lang">text</span>' in plain and "<pre><code>plain" in plain
    odd = render_markdown('```"><script>alert(1)</script>\nx\n```')
    assert "<script" not in odd and 'class="language-"' not in odd


def test_classes_outside_the_allow_list_are_dropped():
    # Only the renderer writes classes; the sanitiser keeps the known ones and nothing else.
    from chat.rendering import ALLOWED_CLASSES, ALLOWED_TAGS, nh3

    dirty = '<span class="k evil">x</span><div class="codeblock overlay">y</div>'
    clean = nh3.clean(dirty, tags=ALLOWED_TAGS, attributes={}, allowed_classes=ALLOWED_CLASSES)
    assert clean == '<span class="k">x</span><div class="codeblock">y</div>'


def test_the_committed_highlight_stylesheet_is_up_to_date():
    committed = Path(__file__).resolve().parents[2] / "static" / "chat" / "highlight.css"
    assert committed.read_text(encoding="utf-8") == highlighting.stylesheet(), (
        "static/chat/highlight.css is stale: run python scripts/highlight_css.py"
    )


def _js_strings(text: str) -> set[str]:
    import re

    return set(re.findall(r'"([^"]+)"', text))


def _js_constant(source: str, name: str) -> str:
    start = source.index(f"const {name} = ")
    return source[start : source.index(";\n", start)]


def test_the_live_renderer_has_the_same_allow_list():
    """static/chat/render.js copies the allow-list (the browser tests compare their output on
    samples; this catches an entry added on one side only, which no sample may exercise)."""
    import re

    from chat.rendering import ALIGN_CLASSES, ALLOWED_ATTRIBUTES, ALLOWED_TAGS

    source = (Path(__file__).resolve().parents[2] / "static/chat/render.js").read_text()
    strings = _js_strings
    assert strings(_js_constant(source, "ALLOWED_TAGS")) == ALLOWED_TAGS
    assert strings(_js_constant(source, "ALIGN_CLASSES")) == ALIGN_CLASSES
    attributes = _js_constant(source, "ALLOWED_ATTRIBUTES")
    for tag, names in ALLOWED_ATTRIBUTES.items():
        line = re.search(rf"^\s*{tag}: \[(.*)\]", attributes, re.M)
        assert line and strings(line.group(1)) == names, tag
    # The class names the live render writes itself (never Pygments' token classes).
    from chat import dollarmath

    classes = _js_constant(source, "ALLOWED_CLASSES")
    expected = {
        "div": highlighting.BLOCK_CLASSES | dollarmath.DIV_CLASSES,
        "span": highlighting.LABEL_CLASSES | dollarmath.SPAN_CLASSES,
    }
    for tag, names in expected.items():
        line = re.search(rf"^\s*{tag}: \[(.*)\]", classes, re.M)
        assert line and strings(line.group(1)) == names, tag
