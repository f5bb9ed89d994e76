/*
 * Live Markdown while a reply streams: the same Markdown as the server renders (chat/rendering.py),
 * in the browser, so the reply looks rendered from its first words and does not jump at the end.
 *
 * markdown-it 14.1.0 is the version markdown-it-py 4.x ports, with the same preset ("default",
 * which chat/rendering.py calls "js-default": no raw HTML, no linkify, no typographer), tables and
 * strikethrough, table alignment as a class and fenced code as the server's labelled block (not
 * highlighted: the server's HTML, with Pygments, replaces the live one when the reply is done).
 * DOMPurify then applies nh3's allow-list: the same tags, attributes per tag, class names per tag,
 * URL schemes and rel on links. Both are vendored (static/chat/vendor/README.md) and loaded as
 * classic bundles that define globals, which module scripts may import for their side effect.
 * TeX math ($x$, $$x$$) is parsed by math.js as the server's chat/dollarmath.py parses it, and
 * typeset with KaTeX in the nodes a frame adds.
 */
import "./vendor/markdown-it.min.js";
import "./vendor/purify.min.js";
import { mathPlugin, typesetMath } from "./math.js";

const { markdownit, DOMPurify } = globalThis;

// The allow-list of chat/rendering.py (ALLOWED_TAGS, ALLOWED_ATTRIBUTES, ALLOWED_CLASSES).
// Pygments' token classes are left out: the live render never highlights code.
const ALLOWED_TAGS = [
  "a", "blockquote", "br", "code", "del", "div", "em", "h1", "h2", "h3", "h4", "h5", "h6",
  "hr", "li", "ol", "p", "pre", "s", "span", "strong", "table", "tbody", "td", "th",
  "thead", "tr", "ul",
];
const ALIGN_CLASSES = ["align-left", "align-center", "align-right"];
const ALLOWED_CLASSES = {
  div: ["codeblock", "codeblock-bar", "math", "math-display"],
  span: ["codeblock-lang", "math", "math-inline", "math-display"],
  th: ALIGN_CLASSES,
  td: ALIGN_CLASSES,
};
const ALLOWED_ATTRIBUTES = {
  a: ["href", "title"],
  code: ["class"], // language-xxx, any value (as nh3: class is an allowed attribute of <code>)
  ol: ["start"],
  div: ["class"],
  span: ["class"],
  th: ["class"],
  td: ["class"],
};
// nh3's url_schemes {http, https, mailto}; relative URLs pass, as with nh3's default.
const ALLOWED_URI = /^(?:(?:https?|mailto):|[^a-z]|[a-z+.-]+(?:[^a-z+.\-:]|$))/i;
const LINK_REL = "noopener noreferrer nofollow";

// chat/highlighting.py: language_of() and code_block().
const LANGUAGE = /^[A-Za-z0-9_+#.-]{1,40}$/;

function escapeHtml(text) {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

export function languageOf(info) {
  const trimmed = info.trim();
  const word = trimmed ? trimmed.split(/\s+/)[0] : "";
  return LANGUAGE.test(word) ? word : "";
}

function codeBlock(code, info) {
  const language = languageOf(info);
  const label = escapeHtml(language || "text");
  const codeClass = language ? ` class="language-${escapeHtml(language)}"` : "";
  return (
    '<div class="codeblock"><div class="codeblock-bar">' +
    `<span class="codeblock-lang">${label}</span></div>` +
    `<pre><code${codeClass}>${escapeHtml(code)}</code></pre></div>\n`
  );
}

/** Turn markdown-it's style="text-align:x" on table cells into class="align-x" (CSP: no inline styles). */
function alignmentAsClass(state) {
  for (const token of state.tokens) {
    if ((token.type !== "th_open" && token.type !== "td_open") || !token.attrs) continue;
    const index = token.attrIndex("style");
    if (index < 0) continue;
    const style = token.attrs[index][1];
    token.attrs.splice(index, 1);
    if (style.startsWith("text-align:")) token.attrSet("class", "align-" + style.slice("text-align:".length));
  }
}

const md = markdownit("default", { html: false, linkify: false, typographer: false })
  .enable("table")
  .enable("strikethrough")
  .use(mathPlugin);
md.renderer.rules.fence = (tokens, idx) => codeBlock(tokens[idx].content, tokens[idx].info);
md.core.ruler.push("alignment_as_class", alignmentAsClass);

DOMPurify.addHook("uponSanitizeAttribute", (node, data) => {
  const tag = node.nodeName.toLowerCase();
  const allowed = ALLOWED_ATTRIBUTES[tag] || [];
  if (!allowed.includes(data.attrName)) {
    data.keepAttr = false;
    return;
  }
  if (data.attrName === "class" && ALLOWED_CLASSES[tag]) {
    const kept = data.attrValue.split(/\s+/).filter((name) => ALLOWED_CLASSES[tag].includes(name));
    data.attrValue = kept.join(" "); // nh3 too keeps class="" when no name is left
  }
});
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.nodeName === "A") node.setAttribute("rel", LINK_REL);
});

const PURIFY_CONFIG = {
  ALLOWED_TAGS,
  ALLOWED_ATTR: ["href", "title", "class", "start"],
  ALLOWED_URI_REGEXP: ALLOWED_URI,
  ALLOW_DATA_ATTR: false,
  ALLOW_ARIA_ATTR: false,
};

/** Return HTML with only the server's allow-list left (chat.rendering.sanitise). */
export function sanitise(html) {
  return DOMPurify.sanitize(html, PURIFY_CONFIG);
}

/** Return Markdown as sanitised HTML, as the server would (without highlighting). */
export function renderMarkdown(text) {
  return sanitise(md.render(text));
}

// Live rendering keeps, per body: the Markdown shown (`text`); a frozen head of it (`frozenText`,
// whole top-level blocks that later text can no longer change) whose `frozenNodes` first child
// nodes are never rendered again, with the link reference definitions it holds (`references`);
// and the HTML of each node of the live tail (`keys`), to replace only the ones that changed.
const rendered = new WeakMap();
// Top-level blocks at the end that stay live: the last one grows, and the one before it may
// still take in a following line (a list item's continuation, a setext underline, a table row).
const LIVE_BLOCKS = 2;

/** The Markdown last rendered into `body` by renderLive(), else its text (plain text from the server). */
export function sourceOf(body) {
  const entry = rendered.get(body);
  return entry ? entry.text : body.textContent || "";
}

function nodeKey(node) {
  return node.nodeType === Node.ELEMENT_NODE ? node.outerHTML : `#${node.textContent}`;
}

/** The character offset where line `line` (0-based) of `text` starts. */
function lineOffset(text, line) {
  let offset = 0;
  for (let i = 0; i < line; i += 1) {
    offset = text.indexOf("\n", offset) + 1;
    if (offset === 0) return -1;
  }
  return offset;
}

/**
 * Render Markdown into `body` while it grows. Only the tail after the frozen head is parsed and
 * sanitised again, and of its nodes only those that changed are replaced: a frame costs what the
 * last blocks cost, not the whole reply, and earlier blocks (a selection in them, a code block's
 * copy button) stay as they are. Call it at most once per animation frame.
 */
export function renderLive(body, text) {
  let entry = rendered.get(body);
  if (entry && entry.text === text) return false;
  if (!entry || !text.startsWith(entry.frozenText)) {
    // A new body (or plain text from the server), or text that changed before the frozen head.
    entry = { text: null, frozenText: "", frozenNodes: 0, references: {}, keys: [] };
    body.replaceChildren();
  }
  const tail = text.slice(entry.frozenText.length);
  const env = { references: { ...entry.references } };
  const tokens = md.parse(tail, env);
  const template = document.createElement("template");
  template.innerHTML = sanitise(md.renderer.render(tokens, md.options, env)); // the allow-list only
  const fresh = Array.from(template.content.childNodes);
  const keys = fresh.map(nodeKey);
  const live = Array.from(body.childNodes).slice(entry.frozenNodes);
  let same = 0;
  if (live.length === entry.keys.length) {
    while (same < keys.length && same < entry.keys.length && keys[same] === entry.keys[same]) same += 1;
  }
  live.slice(same).forEach((node) => node.remove());
  body.append(...fresh.slice(same));
  typesetMath(body);
  entry.text = text;
  entry.keys = keys;
  freeze(entry, tail, tokens, fresh);
  rendered.set(body, entry);
  return true;
}

/** Move the tail's complete blocks (all but the last LIVE_BLOCKS) into the frozen head. */
function freeze(entry, tail, tokens, fresh) {
  // markdown-it counts lines after turning \r\n into \n: with a \r the offsets would differ.
  if (tail.includes("\r")) return;
  const blocks = tokens.filter((token) => token.level === 0 && token.nesting !== -1 && token.map);
  const elements = fresh.filter((node) => node.nodeType === Node.ELEMENT_NODE);
  if (blocks.length <= LIVE_BLOCKS || elements.length !== blocks.length) return;
  const keep = blocks.length - LIVE_BLOCKS; // blocks to freeze
  const offset = lineOffset(tail, blocks[keep].map[0]);
  if (offset <= 0) return;
  const nodes = fresh.indexOf(elements[keep]); // the nodes before the first block that stays live
  const head = tail.slice(0, offset);
  const headEnv = { references: { ...entry.references } };
  md.parse(head, headEnv); // only the definitions in the frozen part: later ones may still grow
  entry.references = headEnv.references || {};
  entry.frozenText += head;
  entry.frozenNodes += nodes;
  entry.keys = entry.keys.slice(nodes);
}

/** Forget what renderLive() wrote (the server's HTML or plain text replaces it). */
export function forgetLive(body) {
  rendered.delete(body);
}
