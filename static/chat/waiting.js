/*
 * Waiting states of a streaming reply: "Thinking…" until its first text arrives, and "Still
 * waiting for the model…" after a few seconds without text mid-stream, gone when text resumes.
 */
import { h } from "./dom.js";

// The server passes its own threshold (data-stall-notice-ms: a third of its upstream timeout).
const app = document.getElementById("chat-app");
export const STALL_NOTICE_MS = parseInt(app && app.dataset.stallNoticeMs, 10) || 4000;
const TEXT = { thinking: "Thinking…", stalled: "Still waiting for the model…" };

function show(article, kind) {
  let node = article.querySelector(".message-waiting");
  if (!kind) {
    if (node) node.remove();
    return;
  }
  if (!node) {
    node = h("p", { className: "message-waiting" });
    article.querySelector(".message-body").after(node);
  }
  node.dataset.waiting = kind;
  node.textContent = TEXT[kind];
}

/** Follow one stream: call text() on each delta with text and end() when it stops. */
export function waitingIndicator(article, hasText) {
  let timer = 0;
  const arm = () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => show(article, "stalled"), STALL_NOTICE_MS);
  };
  if (hasText) arm();
  else show(article, "thinking");
  return {
    text() {
      show(article, null);
      arm();
    },
    end() {
      window.clearTimeout(timer);
      show(article, null);
    },
  };
}
