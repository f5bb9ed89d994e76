"""TeX math through the real renderer (chat/dollarmath.py, then nh3): what becomes math, what
stays text (prices, code), and that TeX is only ever text inside its element."""

import pytest

from chat.rendering import render_markdown


def test_inline_math_is_a_span_holding_the_tex():
    html = render_markdown(r"The cost is $c = p \cdot t_{in}$ per call.")
    assert html == (
        '<p>The cost is <span class="math math-inline">c = p \\cdot t_{in}</span> per call.</p>\n'
    )


def test_display_math_on_its_own_lines_is_a_div():
    html = render_markdown("Over a day:\n\n$$\nC = \\sum_{i=1}^{n} x_i\n$$\n\nDone.")
    assert '<div class="math math-display">C = \\sum_{i=1}^{n} x_i</div>' in html
    assert "<p>Over a day:</p>" in html and "<p>Done.</p>" in html
    # On one line, and straight after a paragraph line (models often write it so).
    assert '<div class="math math-display">E = mc^2</div>' in render_markdown("$$E = mc^2$$")
    after = render_markdown("Then:\n$$\nx^2\n$$\nafter")
    assert after == ('<p>Then:</p>\n<div class="math math-display">x^2</div>\n<p>after</p>\n')


def test_double_dollars_inside_a_paragraph_are_display_math_in_a_span():
    html = render_markdown("so $$a^2 + b^2$$ holds")
    assert html == '<p>so <span class="math math-display">a^2 + b^2</span> holds</p>\n'


def test_tex_is_escaped_text_never_markup():
    html = render_markdown('$<script>alert(1)</script>$ and $a<b>c$ and $"x" & y$')
    assert "<script" not in html and "<b>" not in html
    assert '<span class="math math-inline">&lt;script&gt;alert(1)&lt;/script&gt;</span>' in html
    assert '<span class="math math-inline">a&lt;b&gt;c</span>' in html
    assert "&amp; y" in html
    block = render_markdown("$$\n</div><img src=x onerror=alert(1)>\n$$")
    assert "<img" not in block and "&lt;/div&gt;&lt;img" in block


def test_markdown_inside_math_is_not_markdown():
    html = render_markdown(r"$a * b * c$ and $x_1 + y_1$ and $\{a\}$")
    assert "<em>" not in html
    assert '<span class="math math-inline">a * b * c</span>' in html
    assert '<span class="math math-inline">x_1 + y_1</span>' in html
    assert '<span class="math math-inline">\\{a\\}</span>' in html


@pytest.mark.parametrize(
    "text",
    [
        "It costs $5 and $10 with tax.",
        "From $5 to $8.",
        "Between $3.50 and $4.00, or $5-$6.",
        "Pay 5$ or 10$.",
        "A lone $ sign, and $ spaced $ dollars.",
        "Unclosed $x and more",
        "Escaped \\$x\\$ dollars",
        "$$",
        "$$$$",
    ],
)
def test_prices_and_stray_dollars_stay_text(text):
    html = render_markdown(text)
    assert 'class="math' not in html, html
    assert "$" in html


def test_a_price_before_math_leaves_the_math():
    html = render_markdown("It costs $5, where $x$ is the count; $x$ is 5")
    assert html.count('<span class="math math-inline">x</span>') == 2
    assert "costs $5, where" in html


def test_dollars_in_code_are_untouched():
    html = render_markdown('`$x$` and `$$y$$`\n\n```\necho "$HOME $x$"\n$$\nz\n$$\n```\n')
    assert 'class="math' not in html
    assert "<code>$x$</code>" in html and "<code>$$y$$</code>" in html
    assert "$HOME" in html and "$$\nz\n$$" in html
    indented = render_markdown("    $$\n    x\n    $$\n")
    assert 'class="math' not in indented and "<pre><code>$$" in indented


def test_display_math_needs_its_closing_line_and_no_blank_line():
    unclosed = render_markdown("$$\nx^2\n")  # a reply still streaming its formula
    assert 'class="math' not in unclosed
    blank = render_markdown("$$\nx\n\ny\n$$\n")
    assert '<div class="math' not in blank


def test_math_inside_lists_quotes_tables_and_links():
    html = render_markdown(
        "- item $a$\n\n  $$\n  b\n  $$\n\n> $$\n> c\n> $$\n\n| f | g |\n|--|--|\n| $d$ | 1 |\n\n[$e$](https://x.example/)\n"
    )
    for tex in "ade":
        assert f'<span class="math math-inline">{tex}</span>' in html
    assert '<div class="math math-display">b</div>' in html
    assert '<blockquote>\n<div class="math math-display">c</div>' in html


def test_only_the_math_classes_are_kept():
    from chat.rendering import sanitise

    dirty = '<span class="math math-inline katex evil">x</span><div class="math math-display math-inline">y</div>'
    assert sanitise(dirty) == (
        '<span class="math math-inline">x</span><div class="math math-display">y</div>'
    )


def test_backslash_brackets_are_math_too():
    """\\( \\) and \\[ \\], which models often write, as the dollars are."""
    html = render_markdown(r"Inline \(a^2 + b^2\) and \[c\] here, \( x <y> \)")
    assert '<span class="math math-inline">a^2 + b^2</span>' in html
    assert '<span class="math math-display">c</span>' in html
    assert '<span class="math math-inline">x &lt;y&gt;</span>' in html
    block = render_markdown("Then:\n\\[\nx = \\frac{1}{2}\n\\]\nafter")
    assert block == (
        '<p>Then:</p>\n<div class="math math-display">x = \\frac{1}{2}</div>\n<p>after</p>\n'
    )
    assert render_markdown(r"\[y\]") == '<div class="math math-display">y</div>\n'
    # Escaped backslashes, empty or unclosed brackets, and code stay as they were.
    plain = render_markdown(r"`\(x\)` and \\(not\\) and \(\) and \(unclosed")
    assert 'class="math' not in plain
    assert "\\(not\\)" in plain and "<code>\\(x\\)</code>" in plain
