"""Markdown from the model to safe HTML: markdown-it-py without raw HTML, then nh3 allow-list.

Two things the site's CSP (``style-src 'self'``, no inline styles) shapes here: table column
alignment becomes an ``align-*`` class instead of markdown-it's ``style="text-align:..."``, and
code is highlighted with Pygments class names (see chat/highlighting.py), never inline colours.
TeX math (``$x$``, ``$$x$$``) becomes an element holding the TeX as text (chat/dollarmath.py),
which the page typesets with KaTeX through the DOM (inline styles set that way pass the CSP).
"""

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

from . import dollarmath, highlighting

ALLOWED_TAGS = {
    "a", "blockquote", "br", "code", "del", "div", "em", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "li", "ol", "p", "pre", "s", "span", "strong", "table", "tbody", "td", "th",
    "thead", "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "code": {"class"},  # language-xxx from fenced code blocks
    "ol": {"start"},
}
ALIGN_CLASSES = {"align-left", "align-center", "align-right"}
# nh3 keeps only these class names (any other class is dropped, so a class cannot be smuggled in).
ALLOWED_CLASSES = {
    "div": highlighting.BLOCK_CLASSES | dollarmath.DIV_CLASSES,
    "span": highlighting.TOKEN_CLASSES | highlighting.LABEL_CLASSES | dollarmath.SPAN_CLASSES,
    "th": ALIGN_CLASSES,
    "td": ALIGN_CLASSES,
}


def _fence(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    return highlighting.code_block(token.content, token.info)


def _alignment_as_class(state) -> None:
    """Turn markdown-it's ``style="text-align:x"`` on table cells into ``class="align-x"``."""
    for token in state.tokens:
        if token.type not in ("th_open", "td_open") or not token.attrs:
            continue
        style = token.attrs.pop("style", None)
        if isinstance(style, str) and style.startswith("text-align:"):
            token.attrSet("class", "align-" + style.removeprefix("text-align:"))


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # "js-default" does not pass raw HTML through (the default preset does).
    md = MarkdownIt("js-default").enable("table").enable("strikethrough")
    md.use(dollarmath.dollarmath_plugin)
    md.add_render_rule("fence", _fence)
    md.core.ruler.push("alignment_as_class", _alignment_as_class)
    return md


def render_markdown(text: str) -> str:
    """Return sanitised HTML for model output written in Markdown."""
    return sanitise(_markdown().render(text))


def sanitise(html: str) -> str:
    """Return HTML with only the allow-list left (static/chat/render.js applies the same one)."""
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        allowed_classes=ALLOWED_CLASSES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
