"""Token estimates for when the upstream reports no usage. Pure, no Django."""

import re

# Roughly what BPE tokenizers do: words, numbers, single punctuation marks, CJK characters.
_TOKENISH = re.compile(r"[A-Za-z]+|\d{1,3}|[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]|[^\sA-Za-z\d]")
# The words of _TOKENISH longer than six letters: each counts one piece per six letters.
_LONG_WORD = re.compile(r"[A-Za-z]{7,}")
PER_MESSAGE_OVERHEAD = 4


def estimate_text_tokens(text: str) -> int:
    """Estimate the tokens of ``text``: the larger of a word-piece count and chars/4.

    A word piece is a match of ``_TOKENISH``, a word of L letters counting ceil(L/6). Counted
    without a Python loop over the matches (``subn`` counts them): this runs on every message of
    a reply's context, in the posting request.
    """
    if not text:
        return 0
    pieces = _TOKENISH.subn("", text)[1]
    for word in _LONG_WORD.findall(text):
        pieces += (len(word) - 1) // 6  # ceil(L/6) pieces, one already counted
    return max(pieces, -(-len(text) // 4))


def estimate_messages_tokens(messages: list[dict]) -> int:
    """Estimate the prompt tokens of a chat request's messages."""
    return sum(
        estimate_text_tokens(m.get("content") or "") + PER_MESSAGE_OVERHEAD for m in messages
    )


def fit_history(messages: list[dict], budget: int) -> tuple[list[dict], int]:
    """Drop the oldest messages until the estimate fits ``budget``; always keep the newest one.

    Return the kept messages and their estimate (``estimate_messages_tokens`` of them, counted
    once here rather than again by the caller)."""
    kept: list[dict] = []
    used = 0
    for message in reversed(messages):
        cost = estimate_text_tokens(message.get("content") or "") + PER_MESSAGE_OVERHEAD
        if kept and used + cost > budget:
            break
        kept.append(message)
        used += cost
    kept.reverse()
    return kept, used


def trim_history(messages: list[dict], budget: int) -> list[dict]:
    """``fit_history``'s kept messages."""
    return fit_history(messages, budget)[0]
