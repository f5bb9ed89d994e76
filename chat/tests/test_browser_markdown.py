"""Live Markdown in a real Chromium: the browser's renderer (static/chat/render.js) agrees with the
server's (chat/rendering.py), a streaming reply shows rendered elements, and the end neither
changes the reply's layout nor differs from what a reload shows."""

import json

import pytest

from chat.rendering import render_markdown

from .browser import ASSISTANT, BROWSER_MARKS, log_in, send

pytestmark = BROWSER_MARKS

SAMPLES = {
    "lists": "- **Start small**\n- then *grow*\n  - nested\n\n1. one\n2. two\n\n7. seven\n8. eight\n",
    "loose list": "- first\n\n- second\n",
    "emphasis and strike": "Not ~~this~~ but **that**, _this_, ***both*** and `code <b>`.",
    "table with alignment": "| Item | Price | Note |\n|:--|--:|:-:|\n| Tea | 3 | *hot* |\n| Cake | 12 | |\n",
    "headings": "# One\n## Two\n### Three\n###### Six\n\nSetext\n===\n\nAnother\n---\n",
    "code fences": (
        "```python\ndef f(x):\n    return x < 2 and 'a' or \"b\"\n```\n\n"
        "```\nplain <text> & more\n```\n\n"
        '```nosuchlanguage title="x"\nstuff\n```\n\n'
        "~~~js\nlet a = 1;\n~~~\n\n"
        "    indented code\n"
    ),
    "links": (
        '[site](https://example.com/a?b=1&c=2 "A title") <https://auto.example/x> '
        "[relative](/c/1/) [mail](mailto:a@example.com) [ftp](ftp://files.example/f) "
        "[tel](tel:+123) [ref][r]\n\n[r]: https://ref.example/\n"
    ),
    "block quotes": "> quoted **text**\n> > nested\n>\n> - in a list\n\nafter\n",
    "raw HTML is not passed": (
        '<div class="x" style="color:red">raw <b>bold</b></div>\n\n'
        'inline <span onclick="x()">span</span> <!-- comment --> <br> end\n'
    ),
    "script and javascript links do not run": (
        "<script>window.__pwned = 1</script>\n\n"
        "[click](javascript:window.__pwned=2) <javascript:window.__pwned=3> "
        "[data](data:text/html,<script>window.__pwned=4</script>) "
        "[vb](vbscript:msgbox) ![img](x.png) "
        '<img src=x onerror="window.__pwned=5">\n\n'
        '<a href="javascript:window.__pwned=6">html link</a>\n'
    ),
    "entities and escapes": "a &amp; b &lt; c \\*not em\\* &copy; &#x1F600; 5 > 3\n",
    "breaks and rules": "line one  \nline two\\\nline three\nsoft\n\n---\n\n***\n\nafter\n",
    "code in a list": "- item\n\n  ```js\n  let x = 1;\n  ```\n- other\n",
    "emoji": "Hi 😀 **bold 🎉** and `😀`\n",
    "math": (
        'Inline $c = p \\cdot t_{in}$, $a<b>c$ and $"q" & r$, double $$x^2$$ in text.\n\n'
        "$$\nC = \\sum_{i=1}^{n} x_i\n$$\n\nThen:\n$$\ny\n$$\n$$E = mc^2$$\n\n"
        "- item $a$\n\n  $$\n  b\n  $$\n\n> $$\n> c\n> $$\n\n"
        "| f | g |\n|--|--|\n| $d$ | 1 |\n\n[$e$](https://x.example/) $x$ is 5\n"
    ),
    "dollars that are not math": (
        "It costs $5 and $10.\n\nFrom $5 to $8.\n\nPay 5$ or 10$.\n\nA lone $ and $ spaced $.\n\n"
        'Escaped \\$x\\$.\n\n$$\n\n$$$$\n\n`$x$` and\n\n```bash\necho "$HOME $x$"\n$$\nz\n$$\n```\n\n'
        "    $$\n    indented\n    $$\n\n$$\nunclosed\n\nstill $$ text\n"
    ),
    # Where dollars mix oddly, the two renderers must still agree.
    "dollar soup": (
        "from $5 to $8, 5$ or 10$, $$ and $$$$, `$x$` $a$$b$ $$c$ d$$ $\\$$ \\\\$e$ $f\\\\$ $$g\n\nh$$\n\n"
        "$$a$$ and $$b$$\n\n$$a$$ more\n\n$$ x $$ $y$5 [$z](https://x.example/) $\n\n- $$\n  i\nj\n$$\n"
    ),
    "bracket math": (
        "Inline \\(a^2 + b^2\\) and \\[c\\] here, \\( x <y> \\), \\\\(not\\\\), \\(\\), "
        "`\\(x\\)` \\(unclosed\n\nThen:\n\\[\nx = \\frac{1}{2}\n\\]\n\\[y\\]\n\n"
        "- \\[\n  z\n  \\]\n\n\\[link\\](x) \\[a\\] b\\]\n"
    ),
    "unfinished math": "Almost $x + y and\n\n$$\nC = \\sum\n",
    "unfinished": "Some **bold and `code\n\n```py\nunclosed = True\n",
}

# The same normal form for both: elements with sorted attributes, text merged, whitespace between
# blocks dropped, and the code inside <pre> as plain text (only the server highlights it).
NORMALISE = """(html) => {
  const template = document.createElement('template');
  template.innerHTML = html;
  function walk(node) {
    const out = [];
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) {
        const text = child.textContent;
        if (!text.trim() && !child.parentElement?.closest('pre')) continue;
        if (typeof out[out.length - 1] === 'string') out[out.length - 1] += text;
        else out.push(text);
      } else if (child.nodeType === Node.ELEMENT_NODE) {
        const tag = child.tagName.toLowerCase();
        const attrs = [...child.attributes].map(a => [a.name, a.value]).sort();
        const inPre = tag === 'code' && child.parentElement && child.parentElement.tagName === 'PRE';
        out.push([tag, attrs, inPre ? [child.textContent] : walk(child)]);
      }
    }
    return out;
  }
  return JSON.stringify(walk(template.content));
}"""


def live_html(page, text: str) -> str:
    return page.evaluate(
        "async (text) => (await import('/static/chat/render.js')).renderMarkdown(text)", text
    )


def normalised(page, html: str):
    return json.loads(page.evaluate(NORMALISE, html))


def test_the_browser_renders_markdown_as_the_server_does(page, app_server):
    log_in(page, app_server.base_url)
    for name, text in SAMPLES.items():
        server = normalised(page, render_markdown(text))
        live = normalised(page, live_html(page, text))
        assert live == server, f"{name}: the live render differs from the server's"
    assert "<s>this</s>" in live_html(page, SAMPLES["emphasis and strike"])
    assert 'class="align-right"' in live_html(page, SAMPLES["table with alignment"])
    math = live_html(page, SAMPLES["math"])
    assert '<span class="math math-inline">c = p \\cdot t_{in}</span>' in math
    assert '<div class="math math-display">C = \\sum_{i=1}^{n} x_i</div>' in math
    assert 'class="math' not in live_html(page, SAMPLES["dollars that are not math"])
    brackets = live_html(page, SAMPLES["bracket math"])
    assert '<span class="math math-inline">a^2 + b^2</span>' in brackets
    assert '<div class="math math-display">x = \\frac{1}{2}</div>' in brackets


def test_rendering_a_growing_reply_piece_by_piece_ends_as_one_render(page, app_server):
    """renderLive() freezes complete blocks and re-renders only the tail: fed in small pieces,
    as a stream comes, it must end with what one render of the whole text gives."""
    log_in(page, app_server.base_url)
    text = "\n\n".join(SAMPLES.values()) + "\n\nThe end **here**.\n"
    result = page.evaluate(
        """async ([text, step]) => {
             const { renderLive, renderMarkdown } = await import('/static/chat/render.js');
             const body = document.createElement('div');
             for (let end = 1; end < text.length + step; end += step) {
               renderLive(body, text.slice(0, end));
             }
             const once = document.createElement('div');
             renderLive(once, text);
             return [body.innerHTML, renderMarkdown(text), once.innerHTML];
           }""",
        [text, 7],
    )
    pieces, whole, once = result
    assert normalised(page, pieces) == normalised(page, whole)
    assert pieces == once  # the same nodes, not just the same normal form


# HTML that markdown-it never writes (it escapes raw HTML): the sanitisers' own agreement.
HOSTILE_HTML = {
    "handlers and script URLs": (
        '<p onclick="window.__pwned=1">p</p><img src="x" onerror="window.__pwned=2">'
        '<a href="javascript:window.__pwned=3">js</a> <a href="JaVaScRiPt:window.__pwned=4">js2</a>'
        '<a href="https://ok.example/" target="_blank" title="t">ok</a> <a href="ftp://f.example/">ftp</a>'
        '<a href="data:text/html,x">data</a> <a href="/relative">rel</a>'
    ),
    "script, style, frames, forms": (
        "<script>window.__pwned=5</script><style>body{display:none}</style>"
        '<iframe src="/"></iframe><form action="/x"><input name="a" value="b"></form><b>bold</b>'
    ),
    "classes and styles": (
        '<div class="codeblock evil" style="color:red">d</div><span class="codeblock-lang other">s</span>'
        '<table><tbody><tr><td class="align-right evil" style="x">1</td><th class="nope">2</th></tr>'
        '</tbody></table><code class="language-py whatever">c</code><ol start="3" type="a"><li>x</li></ol>'
        '<span class="math math-inline katex evil">m</span><div class="math-display math-inline">d</div>'
    ),
    "unknown tags keep their text": "<custom-el>inside</custom-el><font color=red>f</font><u>u</u>",
}


@pytest.fixture
def hostile_page(browser, app_server, user):
    """A page for feeding hostile HTML to the sanitiser. Chromium reports a CSP violation for an
    inline handler or style attribute as soon as it *parses* one, even in an inert document (as
    DOMPurify's DOMParser is), so those reports are collected here, not failed on at once: the
    tests check that none comes from what the sanitiser lets through."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.console_errors = []
    page.on("pageerror", lambda exc: page.console_errors.append(f"pageerror: {exc}"))
    page.on(
        "console",
        lambda msg: page.console_errors.append(msg.text) if msg.type == "error" else None,
    )
    log_in(page, app_server.base_url)
    yield page
    context.close()


def sanitised_live(page, html: str) -> str:
    return page.evaluate(
        "async (html) => (await import('/static/chat/render.js')).sanitise(html)", html
    )


def test_the_browser_sanitises_html_as_the_server_does(hostile_page):
    from chat.rendering import sanitise

    page = hostile_page
    for name, html in HOSTILE_HTML.items():
        live = sanitised_live(page, html)
        assert normalised(page, live) == normalised(page, sanitise(html)), name
    assert not [e for e in page.console_errors if "Content Security Policy" not in e]


def test_nothing_from_a_reply_runs_or_loads_in_the_live_render(hostile_page):
    page = hostile_page
    text = "\n\n".join(
        SAMPLES[name]
        for name in ("script and javascript links do not run", "raw HTML is not passed", "links")
    )
    html = live_html(page, text) + sanitised_live(page, "".join(HOSTILE_HTML.values()))
    # Clear the reports of parsing the hostile input (see the fixture): everything the page logged
    # before a marker it logs afterwards (the console keeps the page's order), not a guessed time.
    with page.expect_console_message(lambda m: m.text == "__parsed__"):
        page.evaluate(
            "() => new Promise(r => setTimeout(() => { console.error('__parsed__'); r(); }, 200))"
        )
    del page.console_errors[: page.console_errors.index("__parsed__") + 1]
    # Put the output into the page, as a streaming reply is: nothing in it may run, load, or be
    # refused by the CSP (which would report it on the console).
    page.evaluate(
        """(html) => { const div = document.createElement('div');
             div.id = 'probe'; div.className = 'markdown'; div.innerHTML = html;
             document.getElementById('message-list').append(div); }""",
        html,
    )
    probe = page.locator("#probe")
    assert probe.locator("script, style, img, iframe, form, input, [style], [onclick]").count() == 0
    links = probe.locator("a").evaluate_all(
        "links => links.map(a => [a.getAttribute('href'), a.rel, a.target])"
    )
    assert len(links) >= 8
    assert all(rel == "noopener noreferrer nofollow" and not target for _, rel, target in links)
    hrefs = [href for href, _, _ in links if href]
    assert hrefs and all(href.startswith(("https:", "mailto:", "/")) for href in hrefs), hrefs
    assert "<script>window.__pwned = 1</script>" in probe.text_content()  # shown, as text
    page.wait_for_timeout(300)  # an onerror handler would have run by now
    assert page.evaluate("() => window.__pwned") is None
    assert page.console_errors == []


def test_a_streaming_reply_is_rendered_markdown_and_ends_as_a_reload_shows_it(page, app_server):
    log_in(page, app_server.base_url)
    send(page, "A long answer please [sim:tokens=240,tps=20]")  # 12 s: seen while it streams
    reply = page.locator(ASSISTANT).last
    seen = page.wait_for_function(
        """(article) => {
             const body = article.querySelector('.message-body');
             const strong = body.querySelector('li > strong');
             if (!strong) return false;
             return {status: article.dataset.status, strong: strong.textContent,
                     raw: body.textContent.includes('**Document the why**'),
                     streaming: body.classList.contains('is-streaming')};
           }""",
        arg=reply.element_handle(),
    ).json_value()
    assert seen == {
        "status": "streaming",
        "strong": "Document the why",
        "raw": False,
        "streaming": True,
    }
    page.wait_for_selector(f"{ASSISTANT}[data-status=completed] .message-stats")
    body = reply.locator(".message-body")
    live_final = body.inner_html()
    assert body.locator("li strong").count() == 5 and "**" not in body.text_content()

    # No jump at the end: the live render of the whole text takes the height the final HTML has.
    heights = body.evaluate(
        """async (body) => {
             const { renderLive } = await import('/static/chat/render.js');
             const twin = body.cloneNode(false);
             body.after(twin);
             renderLive(twin, body.closest('.message').dataset.markdown);
             const result = [body.getBoundingClientRect().height, twin.getBoundingClientRect().height];
             twin.remove();
             return result;
           }"""
    )
    assert heights[0] > 0 and heights[0] == heights[1]

    page.reload()
    reloaded = page.locator(ASSISTANT).last.locator(".message-body")
    assert reloaded.inner_html() == live_final


@pytest.fixture
def code_question():
    from .test_browser_ux import _question_with_python_code

    return _question_with_python_code()


def test_code_blocks_stream_in_their_frame_and_end_highlighted(page, app_server, code_question):
    log_in(page, app_server.base_url)
    send(page, code_question.replace("tokens=90]", "tokens=90,tps=20]"))
    reply = page.locator(ASSISTANT).last
    # Mid-stream the code already sits in its labelled block (with its copy button), plain.
    seen = page.wait_for_function(
        """(article) => {
             const block = article.querySelector('.message-body .codeblock');
             if (!block || article.dataset.status !== 'streaming') return false;
             return {lang: block.querySelector('.codeblock-lang').textContent,
                     copy: !!block.querySelector('.codeblock-copy'),
                     highlighted: !!block.querySelector('pre code span')};
           }""",
        arg=reply.element_handle(),
    ).json_value()
    assert seen == {"lang": "python", "copy": True, "highlighted": False}
    page.wait_for_selector(f"{ASSISTANT}[data-status=completed] .message-stats")
    assert reply.locator(".codeblock span.k").count() > 0  # the server's highlighting
    assert reply.locator(".codeblock-copy").count() == 1
