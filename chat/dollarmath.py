r"""TeX math in replies: ``$...$`` and ``\(...\)`` inline, ``$$...$$`` and ``\[...\]`` display,
as elements the page typesets.

A markdown-it-py plugin modelled on mdit-py-plugins' ``dollarmath`` with its strict options
(no space inside the dollars, no digit outside them, no blank line in a block, no labels), written
here so that the page's copy (``static/chat/math.js``) can follow it line by line: the two must
parse alike, and dollarmath itself reads ``src[pos - 1]`` at the start of a paragraph (the
paragraph's *last* character in Python) and Python's Unicode ``isdigit``, which JavaScript does
not share. The math is not typeset here: the TeX goes out as escaped text in

- ``<span class="math math-inline">TeX</span>`` for ``$TeX$`` and ``\(TeX\)``,
- ``<span class="math math-display">TeX</span>`` for ``$$TeX$$`` and ``\[TeX\]`` inside a paragraph,
- ``<div class="math math-display">TeX</div>`` for ``$$`` (or ``\[`` and ``\]``) on lines of their own,

and the page typesets each with KaTeX (docs/ui.md). Prices stay text: ``$5 and $10`` is no math
(a space before the closing dollar, a digit after it), nor is ``5$``.
"""

from collections.abc import Callable

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml, isWhiteSpace
from markdown_it.ruler import RuleOptionsType
from markdown_it.rules_block import StateBlock
from markdown_it.rules_inline import StateInline

# The class names the sanitiser keeps (chat.rendering.ALLOWED_CLASSES).
SPAN_CLASSES = frozenset({"math", "math-inline", "math-display"})
DIV_CLASSES = frozenset({"math", "math-display"})

DIGITS = "0123456789"  # ASCII only, in both renderers
BLANKS = " \t\n"


def _escaped(src: str, pos: int) -> bool:
    """True if an odd number of backslashes stands right before ``src[pos]``."""
    backslashes = 0
    while pos - backslashes - 1 >= 0 and src[pos - backslashes - 1] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


def _closing(src: str, marker: str, pos: int, limit: int) -> int:
    """The index of the next unescaped ``marker`` from ``pos`` that ends by ``limit``, or -1."""
    while True:
        end = src.find(marker, pos, limit)
        if end == -1 or not _escaped(src, end):
            return end
        pos = end + 1


def math_inline(state: StateInline, silent: bool) -> bool:
    src, start = state.src, state.pos
    if src[start] != "$" or _escaped(src, start):
        return False
    if start > 0 and src[start - 1] in DIGITS:
        return False  # "5$"
    double = src.startswith("$$", start)
    marker = "$$" if double else "$"
    first = start + len(marker)
    end = _closing(src, marker, first, state.posMax)
    if end == -1 or end == first:
        return False  # no closing dollar (in this paragraph or link text), or nothing between
    after = end + len(marker)
    if after < state.posMax and src[after] in DIGITS:
        return False  # "$5 and $10": a digit right after the closing dollar
    if not double and (isWhiteSpace(ord(src[first])) or isWhiteSpace(ord(src[end - 1]))):
        return False  # "$ x $", "$5 and $"
    content = src[first:end].strip(BLANKS)
    if not content:
        return False
    if not silent:
        token = state.push("math_inline_double" if double else "math_inline", "math", 0)
        token.content = content
        token.markup = marker
    state.pos = after
    return True


# \( \) inline, \[ \] display: no rule about spaces or digits (the delimiters are unambiguous).
_BRACKETS = {"(": ("\\)", "math_inline"), "[": ("\\]", "math_inline_double")}


def math_inline_bracket(state: StateInline, silent: bool) -> bool:
    src, start = state.src, state.pos
    if src[start] != "\\" or start + 1 >= state.posMax or src[start + 1] not in _BRACKETS:
        return False
    if _escaped(src, start):
        return False
    closer, kind = _BRACKETS[src[start + 1]]
    first = start + 2
    end = _closing(src, closer, first, state.posMax)
    if end == -1:
        return False
    content = src[first:end].strip(BLANKS)
    if not content:
        return False
    if not silent:
        token = state.push(kind, "math", 0)
        token.content = content
        token.markup = src[start : start + 2]
    state.pos = end + len(closer)
    return True


def _block_rule(opening: str, closing: str) -> Callable[[StateBlock, int, int, bool], bool]:
    """A block rule for math between ``opening`` and ``closing`` (``$$``/``$$`` or ``\\[``/``\\]``)."""

    def math_block(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
        if state.sCount[start_line] - state.blkIndent >= 4:
            return False  # indented code
        start = state.bMarks[start_line] + state.tShift[start_line]
        maximum = state.eMarks[start_line]
        if not state.src.startswith(opening, start):
            return False
        first = state.src[start + len(opening) : maximum].rstrip(" \t")
        lines: list[str] = []
        next_line = start_line
        if first.endswith(closing):
            if closing in first[: -len(closing)]:
                return False  # "$$a$$ and $$b$$": inline math in a paragraph
            lines.append(first[: -len(closing)])
        else:
            if closing in first:
                return False  # "$$a$$ more": inline math in a paragraph
            lines.append(first)
            while True:
                next_line += 1
                if next_line >= end_line:
                    return False  # not closed
                begin = state.bMarks[next_line] + state.tShift[next_line]
                text = state.src[begin : state.eMarks[next_line]].rstrip(" \t")
                if not text or state.sCount[next_line] < state.blkIndent:
                    return False  # a blank line, or the end of the list item or quote
                if text.endswith(closing):
                    lines.append(text[: -len(closing)])
                    break
                lines.append(text)
        content = "\n".join(lines).strip(BLANKS)
        if not content:
            return False
        if silent:
            return True
        state.line = next_line + 1
        token = state.push("math_block", "math", 0)
        token.block = True
        token.content = content
        token.markup = opening
        token.map = [start_line, state.line]
        return True

    return math_block


def _render_inline(self, tokens, idx, options, env) -> str:
    return f'<span class="math math-inline">{escapeHtml(tokens[idx].content)}</span>'


def _render_inline_double(self, tokens, idx, options, env) -> str:
    return f'<span class="math math-display">{escapeHtml(tokens[idx].content)}</span>'


def _render_block(self, tokens, idx, options, env) -> str:
    return f'<div class="math math-display">{escapeHtml(tokens[idx].content)}</div>\n'


def dollarmath_plugin(md: MarkdownIt) -> None:
    """Add the two rules and their renderers (static/chat/math.js has the same)."""
    alt: RuleOptionsType = {"alt": ["paragraph", "reference", "blockquote", "list"]}
    md.inline.ruler.before("escape", "math_inline", math_inline)
    md.inline.ruler.before("escape", "math_inline_bracket", math_inline_bracket)
    md.block.ruler.before("fence", "math_block", _block_rule("$$", "$$"), alt)
    md.block.ruler.before("fence", "math_block_bracket", _block_rule("\\[", "\\]"), alt)
    md.add_render_rule("math_inline", _render_inline)
    md.add_render_rule("math_inline_double", _render_inline_double)
    md.add_render_rule("math_block", _render_block)
