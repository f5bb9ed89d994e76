/*
 * TeX math in replies: the markdown-it plugin that finds it (the same rules as the server's
 * chat/dollarmath.py, line by line, so the live render and the final HTML agree) and the
 * typesetting with KaTeX, vendored (static/chat/vendor/README.md) and loaded on first use.
 *
 * The markup is the server's: <span class="math math-inline">TeX</span> for $TeX$ and \(TeX\),
 * <span class="math math-display"> for $$TeX$$ and \[TeX\] inside a paragraph,
 * <div class="math math-display"> for $$ (or \[ and \]) on lines of their own, the TeX as text.
 * typesetMath() then renders each such element in place with katex.render(), which builds DOM
 * nodes and sets their styles through the CSSOM: the CSP (style-src 'self', no inline style
 * attributes) allows that, while an HTML string from renderToString() would have its style
 * attributes refused (see stylesThroughCssom for the few styles KaTeX sets as attributes).
 */

const KATEX_URL = "./vendor/katex-0.19.1/katex.min.js";
const DIGITS = "0123456789"; // ASCII only, as the server
const BLANKS = /^[ \t\n]+|[ \t\n]+$/g;

function strip(text) {
  return text.replace(BLANKS, "");
}

function rstrip(text) {
  return text.replace(/[ \t]+$/, "");
}

/** True if an odd number of backslashes stands right before src[pos]. */
function escaped(src, pos) {
  let backslashes = 0;
  while (pos - backslashes - 1 >= 0 && src[pos - backslashes - 1] === "\\") backslashes += 1;
  return backslashes % 2 === 1;
}

/** The index of the next unescaped `marker` from `pos` that ends by `limit`, or -1. */
function closing(src, marker, pos, limit) {
  for (;;) {
    const end = src.indexOf(marker, pos);
    if (end === -1 || end + marker.length > limit) return -1;
    if (!escaped(src, end)) return end;
    pos = end + 1;
  }
}

function mathInline(state, silent) {
  const src = state.src;
  const start = state.pos;
  if (src[start] !== "$" || escaped(src, start)) return false;
  if (start > 0 && DIGITS.includes(src[start - 1])) return false; // "5$"
  const double = src.startsWith("$$", start);
  const marker = double ? "$$" : "$";
  const first = start + marker.length;
  const end = closing(src, marker, first, state.posMax);
  if (end === -1 || end === first) return false;
  const after = end + marker.length;
  if (after < state.posMax && DIGITS.includes(src[after])) return false; // "$5 and $10"
  const { isWhiteSpace } = state.md.utils;
  if (!double && (isWhiteSpace(src.charCodeAt(first)) || isWhiteSpace(src.charCodeAt(end - 1)))) {
    return false; // "$ x $", "$5 and $"
  }
  const content = strip(src.slice(first, end));
  if (!content) return false;
  if (!silent) {
    const token = state.push(double ? "math_inline_double" : "math_inline", "math", 0);
    token.content = content;
    token.markup = marker;
  }
  state.pos = after;
  return true;
}

// \( \) inline, \[ \] display: no rule about spaces or digits (the delimiters are unambiguous).
const BRACKETS = { "(": ["\\)", "math_inline"], "[": ["\\]", "math_inline_double"] };

function mathInlineBracket(state, silent) {
  const src = state.src;
  const start = state.pos;
  if (src[start] !== "\\" || start + 1 >= state.posMax || escaped(src, start)) return false;
  if (src[start + 1] !== "(" && src[start + 1] !== "[") return false;
  const [closer, kind] = BRACKETS[src[start + 1]];
  const first = start + 2;
  const end = closing(src, closer, first, state.posMax);
  if (end === -1) return false;
  const content = strip(src.slice(first, end));
  if (!content) return false;
  if (!silent) {
    const token = state.push(kind, "math", 0);
    token.content = content;
    token.markup = src.slice(start, start + 2);
  }
  state.pos = end + closer.length;
  return true;
}

/** A block rule for math between `open` and `close` ($$ and $$, or \[ and \]). */
function blockRule(open, close) {
  return function mathBlock(state, startLine, endLine, silent) {
    if (state.sCount[startLine] - state.blkIndent >= 4) return false; // indented code
    const start = state.bMarks[startLine] + state.tShift[startLine];
    const maximum = state.eMarks[startLine];
    if (!state.src.startsWith(open, start)) return false;
    const first = rstrip(state.src.slice(start + open.length, maximum));
    const lines = [];
    let nextLine = startLine;
    if (first.endsWith(close)) {
      if (first.slice(0, -close.length).includes(close)) return false; // "$$a$$ and $$b$$"
      lines.push(first.slice(0, -close.length));
    } else {
      if (first.includes(close)) return false; // "$$a$$ more"
      lines.push(first);
      for (;;) {
        nextLine += 1;
        if (nextLine >= endLine) return false; // not closed
        const begin = state.bMarks[nextLine] + state.tShift[nextLine];
        const text = rstrip(state.src.slice(begin, state.eMarks[nextLine]));
        if (!text || state.sCount[nextLine] < state.blkIndent) return false;
        if (text.endsWith(close)) {
          lines.push(text.slice(0, -close.length));
          break;
        }
        lines.push(text);
      }
    }
    const content = strip(lines.join("\n"));
    if (!content) return false;
    if (silent) return true;
    state.line = nextLine + 1;
    const token = state.push("math_block", "math", 0);
    token.block = true;
    token.content = content;
    token.markup = open;
    token.map = [startLine, state.line];
    return true;
  };
}

/** The markdown-it plugin: md.use(mathPlugin). */
export function mathPlugin(md) {
  const escapeHtml = md.utils.escapeHtml;
  const alt = { alt: ["paragraph", "reference", "blockquote", "list"] };
  md.inline.ruler.before("escape", "math_inline", mathInline);
  md.inline.ruler.before("escape", "math_inline_bracket", mathInlineBracket);
  md.block.ruler.before("fence", "math_block", blockRule("$$", "$$"), alt);
  md.block.ruler.before("fence", "math_block_bracket", blockRule("\\[", "\\]"), alt);
  md.renderer.rules.math_inline = (tokens, idx) =>
    `<span class="math math-inline">${escapeHtml(tokens[idx].content)}</span>`;
  md.renderer.rules.math_inline_double = (tokens, idx) =>
    `<span class="math math-display">${escapeHtml(tokens[idx].content)}</span>`;
  md.renderer.rules.math_block = (tokens, idx) =>
    `<div class="math math-display">${escapeHtml(tokens[idx].content)}</div>\n`;
}

let katex = null;
let loading = null;

function loadKatex() {
  if (!loading) {
    loading = import(KATEX_URL).then(() => {
      katex = globalThis.katex; // a UMD bundle: imported for its side effect, it defines the global
    });
  }
  return loading;
}

/** Math elements under `root` (or `root` itself) that are not typeset yet: only text inside. */
function pending(root) {
  const found = root.matches && root.matches(".math") ? [root] : Array.from(root.querySelectorAll(".math"));
  return found.filter((node) => !node.firstElementChild);
}

const OPTIONS = {
  throwOnError: false, // bad TeX: KaTeX shows its source in a .katex-error span, its message as title
  errorColor: "var(--danger)",
  strict: "ignore", // no console warnings (Unicode in math mode and the like)
  trust: false, // no \href, \url, \includegraphics, \htmlClass, ...
  maxSize: 50, // em: a \rule or a space cannot grow the page without bound
};

/**
 * Run fn with Element#setAttribute("style", css) turned into element.style.cssText = css.
 *
 * KaTeX sets most styles through the CSSOM (node.style.x = ...), which the CSP allows, but a few
 * with setAttribute("style"), which `style-src 'self'` refuses (and reports): the colour of its
 * error span, the width of the SVG pieces of tall braces, \pmb and \fcolorbox in its MathML.
 * The same declarations set through the CSSOM are allowed, so while KaTeX builds its nodes (a
 * synchronous call) style attributes take that way; the method is put back right after.
 */
function stylesThroughCssom(fn) {
  const setAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function (name, value) {
    if (String(name).toLowerCase() === "style") {
      this.style.cssText = String(value);
      return;
    }
    setAttribute.call(this, name, value);
  };
  try {
    fn();
  } finally {
    Element.prototype.setAttribute = setAttribute;
  }
}

/** Typeset one element in place; never throws (the TeX stays, marked, if KaTeX fails). */
function typeset(node) {
  const tex = node.textContent;
  const displayMode = node.classList.contains("math-display");
  try {
    stylesThroughCssom(() => katex.render(tex, node, { ...OPTIONS, displayMode }));
  } catch (err) {
    // Not a parse error (those KaTeX shows itself): its source, marked the same way.
    const error = document.createElement("span");
    error.className = "katex-error";
    error.title = String((err && err.message) || err);
    error.textContent = tex;
    node.replaceChildren(error);
  }
}

/**
 * Typeset the math under `root` that is not typeset yet. At once when KaTeX is loaded (the live
 * render calls this on every frame it changes something), else when it has loaded (the first
 * formula on the page shows its TeX until then, a few milliseconds from the cache).
 */
export function typesetMath(root) {
  const nodes = pending(root);
  if (!nodes.length) return;
  if (katex) {
    nodes.forEach(typeset);
    return;
  }
  loadKatex().then(
    () => typesetMath(root),
    () => {} // no KaTeX (a failed load): the TeX stays readable as text
  );
}
