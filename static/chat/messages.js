/*
 * Messages in the list: new user messages and reply placeholders, a finished reply from the API,
 * the reply toolbar's feedback, and following the list's bottom while a reply streams.
 */
import { addCodeCopyButtons } from "./copy.js";
import { watchScrollers } from "./scrollers.js";
import { h } from "./dom.js";
import { api, messageApiUrl } from "./api.js";
import { clearMessageError, setNotice, showComposerError, showMessageError } from "./errors.js";
import { FINISHED, addRegenerate, ensureToolbar, setStats, setStoppedBadge, tokensPerSecond } from "./footer.js";
import { el, state } from "./page.js";
import { typesetMath } from "./math.js";
import { forgetLive } from "./render.js";

export function removeEmptyState() {
  const empty = document.getElementById("empty-state");
  if (empty) empty.remove();
}

export function renderUserMessage(message) {
  return h(
    "article",
    {
      className: "message message--user",
      id: `message-${message.id}`,
      dataset: { messageId: message.id, role: "user", status: message.status || "completed" },
    },
    h("header", { className: "message-header" }, h("span", { className: "message-author", text: "You" })),
    h("div", { className: "message-body", text: message.content || "" })
  );
}

export function renderAssistantPlaceholder(message) {
  return h(
    "article",
    {
      className: "message message--assistant",
      id: `message-${message.id}`,
      dataset: { messageId: message.id, role: "assistant", status: message.status || "pending" },
    },
    h("header", { className: "message-header" }, h("span", { className: "message-author", text: "Assistant" })),
    h("div", { className: "message-body is-streaming", "aria-busy": "true" })
  );
}

// ---------------------------------------------------------------------------------------------
// Feedback: thumbs up/down on each finished reply, changeable, with an optional comment

export async function rate(article, rating, comment) {
  const body = { rating };
  if (comment !== undefined) body.comment = comment;
  const result = await api("POST", messageApiUrl(article.dataset.messageId, "feedback"), body);
  article.dataset.feedback = result.feedback.rating;
  article.querySelectorAll(".feedback-button").forEach((button) => {
    button.setAttribute("aria-pressed", String(button.dataset.rating === result.feedback.rating));
  });
  return result.feedback;
}

export function showCommentForm(article) {
  const group = article.querySelector(".feedback");
  if (!group || group.querySelector(".feedback-comment")) return;
  const input = h("input", {
    type: "text",
    name: "comment",
    maxlength: "2000",
    className: "feedback-comment-input",
    placeholder: "Optional: what was good or bad?",
    "aria-label": "Comment on this reply",
  });
  const form = h(
    "form",
    { className: "feedback-comment" },
    input,
    h("button", { type: "submit", className: "button button--small", text: "Send" })
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await rate(article, article.dataset.feedback, input.value);
      const hadFocus = form.contains(document.activeElement);
      form.replaceWith(h("span", { className: "feedback-thanks", text: "Thanks for the feedback." }));
      // The box went with the focus in it: back to the thumb that was pressed.
      if (hadFocus) group.querySelector('.feedback-button[aria-pressed="true"]')?.focus();
    } catch (err) {
      showComposerError(err.message);
    }
  });
  group.append(form);
}

/** Every finished reply has its toolbar; only the last one offers Regenerate. */
export function updateRegenerateButtons() {
  el.list.querySelectorAll(".message[data-role=assistant]").forEach(ensureToolbar);
  el.list.querySelectorAll(".message-actions").forEach((node) => node.remove());
  if (state.stream) return;
  const articles = el.list.querySelectorAll(".message");
  const last = articles[articles.length - 1];
  if (!last || last.dataset.role !== "assistant") return;
  if (!FINISHED.includes(last.dataset.status)) return;
  addRegenerate(last);
}

/** Render a finished reply from the message API's JSON (used by Retry after a lost connection). */
export function renderFinishedReply(article, message) {
  const body = article.querySelector(".message-body");
  body.removeAttribute("aria-busy");
  body.classList.remove("is-streaming");
  article.dataset.status = message.status;
  forgetLive(body); // a live render of it, if any, is replaced below
  if (message.html) {
    body.classList.add("markdown");
    body.innerHTML = message.html; // sanitised by the server
    addCodeCopyButtons(body);
    typesetMath(body);
    watchScrollers(body);
  } else {
    body.classList.remove("markdown");
    body.classList.add("is-plain");
    body.textContent = message.content || "";
  }
  if (FINISHED.includes(message.status)) article.dataset.markdown = message.content || "";
  clearMessageError(article);
  setNotice(article, "");
  setStoppedBadge(article, message.status === "cancelled");
  if (message.status === "completed" || message.status === "cancelled") {
    const usage = message.usage || {};
    setStats(article, {
      model: message.model,
      outputTokens: usage.output_tokens,
      estimated: usage.estimated,
      ttftMs: message.ttft_ms,
      latencyMs: message.latency_ms,
      tokensPerSecond:
        message.tokens_per_second ?? tokensPerSecond(usage.output_tokens, message.latency_ms, message.ttft_ms),
    });
  } else {
    const error = message.error || {};
    showMessageError(article, error.message || "The reply could not be completed.", "regenerate");
  }
}

// ---------------------------------------------------------------------------------------------
// Scrolling

/** Give server-rendered messages what the script adds: reply toolbars, code copy buttons. */
export function enhanceMessages() {
  el.list.querySelectorAll(".message[data-role=assistant]").forEach(ensureToolbar);
  addCodeCopyButtons(el.list);
  typesetMath(el.list);
  watchScrollers(el.list);
}

export function isNearBottom() {
  return el.list.scrollHeight - el.list.scrollTop - el.list.clientHeight < 48;
}

export function scrollToBottom(force) {
  if (force || state.stickToBottom) {
    el.list.scrollTop = el.list.scrollHeight;
    state.stickToBottom = true;
  }
}

/** Follow the bottom of the list while a reply streams, unless the user scrolled up. */
export function followScrolling() {
  el.list.addEventListener("scroll", () => {
    state.stickToBottom = isNearBottom();
  }, { passive: true });
}
