"""Reply text of the simulator: deterministic Markdown, titles and judgements, split into tokens.

Pure functions with no I/O: the same last user message and model always give the same text.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections.abc import Iterable
from typing import Any

from .faults import extract_marker
from .showcase import showcase_blocks, wants_long

TOKEN_RE = re.compile(r"\s*\S+\s*")
TITLE_RE = re.compile(r"\btitle\b", re.IGNORECASE)
WORD_RE = re.compile(r"[^\W_](?:[\w'+#.-]*[^\W_])?")


def split_tokens(text: str) -> list[str]:
    """Split text into tokens: words with their trailing whitespace (joining gives the text)."""
    return TOKEN_RE.findall(text)


def message_text(content: Any) -> str:
    """The text of a message's content: a string or a list of ``{"type": "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def estimate_prompt_tokens(messages: Iterable[dict[str, Any]]) -> int:
    """A deterministic stand-in for a tokenizer: 4 characters a token, 4 tokens a message."""
    return sum(math.ceil(len(message_text(m.get("content"))) / 4) + 4 for m in messages)


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message.get("content"))
    return ""


def wants_title(messages: list[dict[str, Any]]) -> bool:
    """The chat app asks for a conversation title with a system message that says "title"."""
    return any(
        m.get("role") in {"system", "developer"} and TITLE_RE.search(message_text(m.get("content")))
        for m in messages
    )


def _rng(user_text: str, model: str) -> random.Random:
    digest = hashlib.sha256(f"{user_text}\x00{model}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))  # noqa: S311 - not for security


_STOPWORDS = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "but", "by", "can", "could", "do", "does",
        "explain", "for", "from", "give", "hello", "hey", "hi", "how", "i", "in", "is", "it",
        "its", "me", "my", "of", "on", "or", "please", "should", "show", "so", "tell", "that",
        "the", "this", "to", "was", "what", "when", "where", "which", "who", "why", "will",
        "with", "would", "you", "your",
    }
)  # fmt: skip

_BULLETS = (
    "**Start small**: get the simplest version working before adding options.",
    "**Measure first**: profile the slow path instead of guessing where time goes.",
    "**Keep it readable**: short functions with clear names age better than clever ones.",
    "**Handle failure**: decide what happens on timeouts, retries and partial results.",
    "**Write a test**: one focused test pins the behaviour you care about most.",
    "**Check the inputs**: validate at the boundary so the core logic can stay simple.",
    "**Mind the limits**: memory, rate limits and quotas shape the design early.",
    "**Log what matters**: record identifiers and timings, never secrets or personal data.",
    "**Automate it**: a script you can rerun beats a checklist you must remember.",
    "**Document the why**: comments should explain decisions, not restate the code.",
    "**Stay consistent**: follow the conventions already used in the codebase.",
    "**Plan the rollout**: ship behind a flag and watch the metrics before going wide.",
)

_CODE_BLOCKS = (
    '```python\ndef summarize(items):\n    return {"count": len(items), "first": items[:1]}\n```',
    "```bash\npython -m venv .venv\n. .venv/bin/activate\npip install -r requirements.txt\n```",
    '```json\n{"retries": 3, "timeout_seconds": 30, "stream": true}\n```',
    "```sql\nSELECT day, count(*) FROM events GROUP BY day ORDER BY day;\n```",
)

# Closing sentences: the long ones fill the budget, the short ones (one of every length from 1
# to 8 tokens) make it come out exact without cutting a sentence in half.
_CLOSING_LONG = (
    "In short, begin with a small working step and check the result before moving on.",
    "Once that works, improve it one change at a time and keep the tests green.",
    "If a step surprises you, reduce it to the smallest example that still shows the problem.",
    "Keep notes on what you tried, because the reasons behind decisions are easy to forget.",
    "When you are unsure between two options, pick the one that is easier to undo.",
    "Review the result with fresh eyes tomorrow, and simplify anything that feels clever.",
)
_CLOSING_SHORT = (
    "Enjoy!",
    "Good luck!",
    "Hope this helps.",
    "Happy to go deeper.",
    "Ask if anything is unclear.",
    "Tell me which part matters most.",
    "I can expand any of these points.",
    "Let me know how it goes for you.",
)


def _quote(user_text: str, max_words: int = 6) -> str:
    words = user_text.replace('"', "'").replace("`", "").split()
    quoted = " ".join(words[:max_words])
    return quoted + ("…" if len(words) > max_words else "")


def _count(parts: list[str]) -> int:
    return len(split_tokens("".join(parts)))


def _closing(rng: random.Random, count: int) -> str:
    """Whole sentences totalling exactly ``count`` tokens."""
    sentences: list[str] = []
    pool = rng.sample(_CLOSING_LONG, k=len(_CLOSING_LONG))
    # Long sentences have at most 16 tokens, and two distinct short ones can make any 1..16.
    while count > 16:
        sentence = pool[len(sentences) % len(pool)]
        sentences.append(sentence)
        count -= len(sentence.split())
    while count > 0:
        unused = [s for s in _CLOSING_SHORT if s not in sentences] or list(_CLOSING_SHORT)
        sentence = max((s for s in unused if len(s.split()) <= count), key=len)
        sentences.append(sentence)
        count -= len(sentence.split())
    return " ".join(sentences)


def generate_reply(user_text: str, model: str, reply_tokens: int, *, showcase: bool = True) -> str:
    """Readable Markdown of exactly ``reply_tokens`` tokens, seeded by the message and model.

    A message naming what it wants to see (a table, code in some language, a list, headings, math;
    see ``showcase``) gets those blocks first, each where the budget has room for it.
    """
    rng = _rng(user_text, model)
    quote = _quote(user_text)
    opening = f'You asked about "{quote}". ' if quote else ""
    blocks = showcase_blocks(user_text) if showcase else []
    if blocks:
        return _showcase_reply(opening, blocks, rng, reply_tokens)
    parts = [opening + "Here is a short, practical overview.\n\n"]
    wanted_bullets = rng.randint(3, 5)
    for bullet in rng.sample(_BULLETS, k=len(_BULLETS)):
        if wanted_bullets == 0:
            break
        if _count([*parts, f"- {bullet}\n"]) <= reply_tokens:
            parts.append(f"- {bullet}\n")
            wanted_bullets -= 1
    code = f"\n{rng.choice(_CODE_BLOCKS)}\n\n"
    if rng.random() < 0.4 and _count([*parts, code]) <= reply_tokens:
        parts.append(code)
    elif parts[-1].endswith("\n") and not parts[-1].endswith("\n\n"):
        parts.append("\n")  # a blank line ends the list before the closing paragraph
    remaining = reply_tokens - _count(parts)
    if remaining > 0:
        parts.append(_closing(rng, remaining))
    # Budgets smaller than the opening line cut it short; everything else fits exactly.
    return "".join(split_tokens("".join(parts))[:reply_tokens]).rstrip()


# A "long" showcase reply is this many times the configured length.
LONG_FACTOR = 6


def showcase_tokens(user_text: str, reply_tokens: int) -> int:
    """The length of a reply to ``user_text``: the configured one, or enough for the blocks it
    asks for (and ``LONG_FACTOR`` times as much for "long")."""
    blocks = showcase_blocks(user_text)
    if not blocks:
        return reply_tokens
    needed = len(split_tokens("\n\n".join(blocks))) + 40  # the opening line and a closing
    return max(reply_tokens * (LONG_FACTOR if wants_long(user_text) else 1), needed)


def _showcase_reply(opening: str, blocks: list[str], rng: random.Random, reply_tokens: int) -> str:
    parts = [opening + "Here is what that looks like.\n\n"]
    for block in blocks:
        if _count([*parts, block, "\n\n"]) <= reply_tokens:
            parts.append(block + "\n\n")
    remaining = reply_tokens - _count(parts)
    if remaining > 0:
        parts.append(_closing(rng, remaining))
    return "".join(split_tokens("".join(parts))[:reply_tokens]).rstrip()


TRANSCRIPT_USER_RE = re.compile(r"^User: (.*)$", re.MULTILINE)


def generate_title(user_text: str, model: str) -> str:
    """A 2-6 word title taken from the user's own words, without quotes or Markdown.

    A transcript (the chat's regenerated title: ``User: ...`` and ``Assistant: ...``
    paragraphs) is titled from its user lines, as a question alone would be.
    """
    user_lines = TRANSCRIPT_USER_RE.findall(user_text)
    if user_lines:
        user_text = " ".join(user_lines)
    rng = _rng(user_text, model)
    words = WORD_RE.findall(user_text)
    content = [w for w in words if w.lower() not in _STOPWORDS] or words
    chosen = content[: rng.randint(3, 5)]
    for filler in ("Chat", "Notes"):
        if len(chosen) >= 2:
            break
        chosen.append(filler)
    return " ".join(w[:1].upper() + w[1:] for w in chosen)


JUDGE_RE = re.compile(r"\bimpartial judge\b", re.IGNORECASE)
ANSWER_LABEL_RE = re.compile(r"^Answer ([A-Z]):", re.MULTILINE)


def wants_judgement(messages: list[dict[str, Any]]) -> bool:
    """The app's prompt evaluation asks a judge with a system message naming an impartial judge."""
    return any(
        m.get("role") in {"system", "developer"} and JUDGE_RE.search(message_text(m.get("content")))
        for m in messages
    )


def generate_judgement(user_text: str, model: str) -> str:
    """Deterministic JSON scores (1-10) for each "Answer X:" in the judge's request."""
    labels = ANSWER_LABEL_RE.findall(user_text) or ["A", "B"]
    scores = {}
    for label in labels:
        start = user_text.find(f"Answer {label}:")
        answer = user_text[start : start + 400]
        scores[label] = 4 + _rng(answer, model).randint(0, 5)
    best = max(scores, key=lambda k: (scores[k], k))
    return json.dumps({"scores": scores, "reason": f"Answer {best} is the most complete."})


def plan_reply(
    messages: list[dict[str, Any]], model: str, reply_tokens: int, *, exact: bool = False
) -> str:
    """The reply text for a request: a title for title requests, otherwise Markdown.

    A showcase message gets as many tokens as its blocks need (``showcase_tokens``); with
    ``exact`` (a ``[sim:tokens=N]`` marker) the reply is the ordinary one of exactly that length,
    whatever the words (tests choose lengths and timings with it).
    """
    user_text, _ = extract_marker(last_user_text(messages))
    if wants_judgement(messages):
        return generate_judgement(user_text, model)
    if wants_title(messages):
        return generate_title(user_text, model)
    if exact:
        return generate_reply(user_text, model, reply_tokens, showcase=False)
    return generate_reply(user_text, model, showcase_tokens(user_text, reply_tokens))
