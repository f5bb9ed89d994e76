/* Error lines (under the composer and inside a reply) and a reply's connection notice. */
import { h } from "./dom.js";
import { el } from "./page.js";

function errorLine(message, retryAction) {
  const line = h("p", { className: "error-line", role: "alert" }, h("span", { className: "error-text", text: message }));
  if (retryAction) {
    line.append(
      " ",
      h("button", {
        type: "button",
        className: "button button--small retry-button",
        dataset: { action: retryAction },
        text: "Retry",
      })
    );
  }
  return line;
}

/** Show an error under the composer (request failures: sending, renaming, stopping...). */
export function showComposerError(message) {
  el.composerErrors.replaceChildren(errorLine(message));
}

export function clearComposerError() {
  el.composerErrors.replaceChildren();
}

/** Show an error inside a reply, with a Retry button, replacing any earlier one. */
export function showMessageError(article, message, retryAction) {
  clearMessageError(article);
  const body = article.querySelector(".message-body");
  body.after(errorLine(message, retryAction === false ? null : retryAction || "regenerate"));
}

export function clearMessageError(article) {
  article.querySelectorAll(".error-line").forEach((node) => node.remove());
}

export function setNotice(article, text) {
  let notice = article.querySelector(".message-notice");
  if (!text) {
    if (notice) notice.remove();
    return;
  }
  if (!notice) {
    notice = h("p", { className: "message-notice" });
    article.querySelector(".message-body").after(notice);
  }
  notice.textContent = text;
}
