"""Token estimates for when the upstream reports no usage. Pure, no Django."""

import math
import re

# Roughly what BPE tokenizers do: words, numbers, single punctuation marks, CJK characters.
_TOKENISH = re.compile(r"[A-Za-z]+|\d{1,3}|[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]|[^\sA-Za-z\d]")
PER_MESSAGE_OVERHEAD = 4


def estimate_text_tokens(text: str) -> int:
    """Estimate the tokens of ``text``: the larger of a word-piece count and chars/4."""
    if not text:
        return 0
    pieces = 0
    for match in _TOKENISH.finditer(text):
        word = match.group()
        # Long words split into several tokens.
        pieces += max(1, math.ceil(len(word) / 6)) if word.isalpha() else 1
    return max(pieces, math.ceil(len(text) / 4))


def estimate_messages_tokens(messages: list[dict]) -> int:
    """Estimate the prompt tokens of a chat request's messages."""
    return sum(
        estimate_text_tokens(m.get("content") or "") + PER_MESSAGE_OVERHEAD for m in messages
    )


def trim_history(messages: list[dict], budget: int) -> list[dict]:
    """Drop the oldest messages until the estimate fits ``budget``; always keep the newest one."""
    kept: list[dict] = []
    used = 0
    for message in reversed(messages):
        cost = estimate_text_tokens(message.get("content") or "") + PER_MESSAGE_OVERHEAD
        if kept and used + cost > budget:
            break
        kept.append(message)
        used += cost
    kept.reverse()
    return kept
