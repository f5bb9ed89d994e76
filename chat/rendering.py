"""Markdown from the model to safe HTML: markdown-it-py without raw HTML, then nh3 allow-list."""

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

ALLOWED_TAGS = {
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "li", "ol", "p", "pre", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "code": {"class"},  # language-xxx from fenced code blocks
}


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # "js-default" does not pass raw HTML through (the default preset does).
    return MarkdownIt("js-default").enable("table").enable("strikethrough")


def render_markdown(text: str) -> str:
    """Return sanitised HTML for model output written in Markdown."""
    html = _markdown().render(text)
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
