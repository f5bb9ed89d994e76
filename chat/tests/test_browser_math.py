"""Math in replies, in a real Chromium: KaTeX typesets $...$ and $$...$$ while the reply streams,
the end and a reload show the same, bad TeX shows its source marked, and the strict CSP
(style-src 'self', no inline styles) reports nothing."""

from pathlib import Path

from .browser import ASSISTANT, BROWSER_MARKS, log_in, send

pytestmark = BROWSER_MARKS

# The simulator's "math" showcase (devtools/simulator/showcase.py, _MATH): one inline formula and
# one display block, with text after them so they close while the reply still streams.
MATH_PROMPT = "Show me some math [sim:tps=10]"

# Every CSP violation of the page, from its first script on (an init script runs before the
# page's own and is not subject to the page's CSP).
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (event) => {
  window.__cspViolations.push(
    `${event.violatedDirective} ${event.blockedURI} ${event.sample || ''}`.trim());
});
"""


def csp_violations(page) -> list[str]:
    return page.evaluate("() => window.__cspViolations")


SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


def shot(page, name: str) -> None:
    """Save a screenshot for review (artifacts/ is gitignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"math-{name}.png")


def test_a_math_reply_is_typeset_while_streaming_and_after_a_reload(page, app_server):
    page.add_init_script(WATCH_CSP)
    log_in(page, app_server.base_url)
    send(page, MATH_PROMPT)
    reply = page.locator(ASSISTANT).last
    seen = page.wait_for_function(
        """(article) => {
             const body = article.querySelector('.message-body');
             const display = body.querySelector('div.math-display > .katex-display');
             if (!display) return false;
             return {status: article.dataset.status,
                     inline: !!body.querySelector('span.math-inline > .katex'),
                     raw: body.textContent.includes('$$'),
                     errors: body.querySelectorAll('.katex-error').length};
           }""",
        arg=reply.element_handle(),
    ).json_value()
    assert seen == {"status": "streaming", "inline": True, "raw": False, "errors": 0}

    page.wait_for_selector(f"{ASSISTANT}[data-status=completed] .message-stats")
    body = reply.locator(".message-body")
    assert body.locator("span.math-inline > .katex").count() == 1
    assert body.locator("div.math-display > .katex-display").count() == 1
    assert body.locator(".katex-error").count() == 0
    # KaTeX's MathML keeps the TeX (screen readers, copying); the visible text has no dollars.
    assert body.locator('annotation[encoding="application/x-tex"]').first.text_content() == (
        "c = p \\cdot t_{in} + q \\cdot t_{out}"
    )
    assert "$" not in body.evaluate("el => el.innerText")
    # KaTeX's fonts were loaded, from this site (the CSP's default-src 'self'), as WOFF2.
    page.wait_for_function(
        """() => ['KaTeX_Main', 'KaTeX_Math'].every((name) => [...document.fonts].some(
                   (face) => face.family.replace(/"/g, '') === name && face.status === 'loaded'))"""
    )
    fonts = page.evaluate(
        "() => performance.getEntriesByType('resource').map((e) => e.name).filter((n) => /font/i.test(n))"
    )
    vendored = f"{app_server.base_url}/static/chat/vendor/katex-0.19.1/fonts/KaTeX_"
    assert fonts and all(url.startswith(vendored) and url.endswith(".woff2") for url in fonts)
    final = body.inner_html()
    # No jump at the end: the live render of the whole text (typeset at once now that KaTeX is
    # loaded) takes the height the server's HTML has.
    heights = body.evaluate(
        """async (body) => {
             const { renderLive } = await import('/static/chat/render.js');
             const twin = body.cloneNode(false);
             body.after(twin);
             renderLive(twin, body.closest('.message').dataset.markdown);
             const result = [body.getBoundingClientRect().height, twin.getBoundingClientRect().height,
                             twin.querySelectorAll('.katex').length];
             twin.remove();
             return result;
           }"""
    )
    assert heights[0] > 0 and heights[0] == heights[1] and heights[2] == 2

    # The reply's copy button copies its Markdown, dollars and all.
    reply.locator(".copy-reply-button").click()
    page.wait_for_function("() => document.querySelector('.copy-reply-button.is-copied')")
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert "$c = p \\cdot t_{in} + q \\cdot t_{out}$" in copied and "\n$$\nC = \\sum" in copied
    assert csp_violations(page) == []

    page.reload()
    reloaded = page.locator(ASSISTANT).last.locator(".message-body")
    page.wait_for_selector(f"{ASSISTANT} .message-body div.math-display > .katex-display")
    assert reloaded.inner_html() == final
    shot(page, "reply-light")
    page.click("#theme-toggle")
    page.wait_for_selector("html[data-theme=dark]")
    shot(page, "reply-dark")
    assert csp_violations(page) == []


def test_bad_tex_shows_its_source_marked_and_the_rest_still_renders(page, app_server):
    page.add_init_script(WATCH_CSP)
    log_in(page, app_server.base_url)
    text = (
        "Good $x^2$, bad $\\frac{1$ and $\\notacommand{y}$.\n\n"
        "$$\n\\begin{matrix} a \\\\\n$$\n\n"
        "After **that**, $\\textcolor{blue}{r} \\rule{1em}{2em} \\pmb{p}$ and a tall brace:\n\n"
        "$$\n\\left\\lbrace\\begin{matrix}a\\\\b\\\\c\\\\d\\\\e\\\\f\\\\g\\\\h\\\\i\\\\j\\\\k\\\\l"
        "\\end{matrix}\\right\\rbrace\n$$\n"
    )
    result = page.evaluate(
        """async (text) => {
             const { renderLive } = await import('/static/chat/render.js');
             const body = document.createElement('div');
             body.className = 'message-body markdown';
             document.getElementById('message-list').append(body);
             renderLive(body, text);
             const deadline = Date.now() + 15000;  // KaTeX loads on first use
             while (body.querySelectorAll('.math').length !== body.querySelectorAll('.math > *').length
                    && Date.now() < deadline) {
               await new Promise((resolve) => setTimeout(resolve, 20));
             }
             const danger = getComputedStyle(document.documentElement).getPropertyValue('--danger');
             const probe = document.createElement('span');
             probe.style.color = danger;
             body.append(probe);
             const dangerColour = getComputedStyle(probe).color;
             probe.remove();
             const errors = [...body.querySelectorAll('.katex-error')];
             const unknown = [...body.querySelectorAll('.katex-html *')].find(
               (node) => node.textContent === '\\\\notacommand' && !node.children.length);
             return {
               typeset: body.querySelectorAll('.math > .katex, .math > .katex-display').length,
               errors: errors.map((node) => [node.parentElement.className, node.textContent,
                                             node.title.startsWith('ParseError: KaTeX parse error')]),
               errorColours: errors.map((node) => getComputedStyle(node).color === dangerColour),
               unknownColour: unknown && getComputedStyle(unknown).color === dangerColour,
               strong: body.querySelector('strong')?.textContent,
             };
           }""",
        text,
    )
    # x^2, the unknown command (KaTeX shows it in the error colour), the coloured one, the brace.
    assert result["typeset"] == 4
    assert result["errors"] == [
        ["math math-inline", "\\frac{1", True],
        ["math math-display", "\\begin{matrix} a \\\\", True],
    ]
    assert result["errorColours"] == [True, True] and result["unknownColour"] is True
    assert result["strong"] == "that"
    shot(page, "bad-tex")
    # KaTeX's styles (\textcolor, \rule, the error colour, the SVG of the tall brace, \pmb's
    # MathML) reach the nodes through the CSSOM, which the CSP allows: no violation.
    assert csp_violations(page) == []
