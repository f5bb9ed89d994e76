"""Checks and clean-ups of the text a user sends (messages, titles), and the stand-in title."""

import re

from django.conf import settings

from core.user_text import unstorable

from .errors import ChatError


def refuse_unstorable(value: str, *, field: str) -> None:
    """Raise ChatError(invalid_input) for text no database can store (NUL, lone surrogates)."""
    reason = unstorable(value)
    if reason:
        raise ChatError(f"'{field}' {reason}.", code="invalid_input", field=field)


def clean_content(content: object) -> str:
    if not isinstance(content, str):
        raise ChatError("'content' must be a string.", code="invalid_content")
    refuse_unstorable(content, field="content")
    content = content.strip()
    if not content:
        raise ChatError("The message is empty.", code="empty_content")
    if len(content) > settings.CHAT_MAX_MESSAGE_CHARS:
        raise ChatError(
            f"The message is {len(content):,} characters long; the limit is "
            f"{settings.CHAT_MAX_MESSAGE_CHARS:,}.",
            code="content_too_long",
        )
    return content


def clean_title(title: object) -> str:
    if not isinstance(title, str) or not title.strip():
        raise ChatError("'title' must be a non-empty string.", code="invalid_title")
    refuse_unstorable(title, field="title")
    title = " ".join(title.split())
    if len(title) > 200:
        raise ChatError("The title is longer than 200 characters.", code="invalid_title")
    return title


# Quotes, Markdown and spaces a model may wrap its title in.
_TITLE_JUNK = "\"'*#` \u201c\u201d\u2018\u2019"


def clean_generated_title(title: str) -> str:
    """Return the model's title without the wrapping it may add (quotes, Markdown, a final
    period), whitespace collapsed, cut to 80 characters; "" if nothing is left."""
    title = re.sub(r"\s+", " ", title).strip().strip(_TITLE_JUNK).rstrip(".")
    return title[:80].rstrip()


# `[name:...]`: a bracketed lowercase word and a colon, the shape of machine-read markers such as
# the simulator's fault markers (`[sim:status=401]`) or a tool's `[ref:42]`. They are noise in a
# title. Matched by shape, not by name: production code knows nothing of the simulator.
MARKER = re.compile(r"\[[a-z][a-z0-9_-]*:[^\[\]\n]*\]")


def fallback_title(content: str, *, words: int = 6) -> str:
    """Return the first words of a message, the title until the model names the conversation
    (and for good if it never does, e.g. when the first reply failed), markers left out."""
    all_words = MARKER.sub(" ", content).split()
    title = " ".join(all_words[:words])
    if len(title) > 60:
        title = title[:59].rstrip() + "…"
    elif len(all_words) > words:
        title += "…"
    return title or "New conversation"
