/*
 * A reply's header badge and footer: the stats line, then one toolbar (thumbs up/down, copy,
 * and Regenerate on the last reply). The toolbar is cloned from the server's own markup
 * (templates/chat/_reply_toolbar.html), so a live reply and a reloaded one look the same.
 */
import { fromTemplate, h } from "./dom.js";

export const FINISHED = ["completed", "cancelled"];

export function formatDuration(ms) {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function tokensPerSecond(outputTokens, latencyMs, ttftMs) {
  if (!outputTokens || !latencyMs || ttftMs === null || ttftMs === undefined) return null;
  const generatingMs = Math.max(latencyMs - ttftMs, 1);
  return Math.round((outputTokens * 10000) / generatingMs) / 10;
}

/** Fill a stats line like the server's: model · N output tokens · TTFT · total · tok/s. */
function buildStats(stats) {
  const parts = [];
  const isSet = (value) => value !== null && value !== undefined;
  if (stats.model) parts.push(stats.model);
  if (isSet(stats.outputTokens)) parts.push(`${stats.estimated ? "~" : ""}${stats.outputTokens} output tokens`);
  if (isSet(stats.ttftMs)) parts.push(`TTFT ${stats.ttftMs} ms`);
  if (isSet(stats.latencyMs)) parts.push(`total ${formatDuration(stats.latencyMs)}`);
  if (isSet(stats.tokensPerSecond)) parts.push(`${Number(stats.tokensPerSecond).toFixed(1)} tok/s`);

  const line = h("p", { className: "message-stats" });
  parts.forEach((text, index) => {
    const classes = index === 0 && stats.model ? "stat stat--model" : "stat";
    const span = h("span", { className: classes });
    if (index > 0) span.append(h("span", { className: "stat-sep", text: " · " }));
    span.append(text);
    line.append(span);
  });
  return line;
}

function footerOf(article) {
  let footer = article.querySelector(".message-footer");
  if (!footer) {
    footer = h("footer", { className: "message-footer" });
    article.append(footer);
  }
  return footer;
}

export function setStats(article, stats) {
  const footer = footerOf(article);
  const old = footer.querySelector(".message-stats");
  const line = buildStats(stats);
  if (old) old.replaceWith(line);
  else footer.prepend(line);
}

export function setStoppedBadge(article, stopped) {
  const header = article.querySelector(".message-header");
  const badge = header.querySelector(".message-badge");
  if (stopped && !badge) {
    header.append(h("span", { className: "message-badge", text: "Stopped" }));
  } else if (!stopped && badge) {
    badge.remove();
  }
}

/** Give a finished reply its toolbar (thumbs, copy) if it has none yet. */
export function ensureToolbar(article) {
  if (article.dataset.role !== "assistant" || !FINISHED.includes(article.dataset.status)) return null;
  const footer = footerOf(article);
  let toolbar = footer.querySelector(".message-toolbar");
  if (toolbar) return toolbar;
  toolbar = fromTemplate("reply-toolbar-template");
  if (!toolbar) return null;
  const current = article.dataset.feedback || "";
  toolbar.querySelectorAll(".feedback-button").forEach((button) => {
    button.setAttribute("aria-pressed", String(button.dataset.rating === current));
  });
  footer.append(toolbar);
  return toolbar;
}

/** Put Regenerate at the end of the reply's toolbar. */
export function addRegenerate(article) {
  const toolbar = ensureToolbar(article);
  const action = fromTemplate("regenerate-template");
  if (toolbar && action) toolbar.append(action);
}
