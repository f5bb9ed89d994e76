/*
 * Copy buttons: one per code block (its code) and one per finished reply (its Markdown, kept in
 * the article's data-markdown by the server and by the stream).
 */
import { h, icon } from "./dom.js";

/** Put text on the clipboard; resolve to true if it worked. */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch (err) {
      // Refused (permissions, focus): try the old way below.
    }
  }
  // Plain HTTP on a non-local host has no Clipboard API: a hidden textarea and execCommand.
  const area = h("textarea", { className: "visually-hidden", readonly: true, "aria-hidden": "true" });
  area.value = text;
  document.body.append(area);
  area.select();
  let copied = false;
  try {
    copied = document.execCommand("copy");
  } catch (err) {
    copied = false;
  }
  area.remove();
  return copied;
}

/** Show on the button that it worked (a check mark and "Copied" for a moment). */
export function showCopied(button, copied) {
  const label = button.getAttribute("aria-label") || "";
  const original = button.dataset.label || label;
  button.dataset.label = original;
  button.classList.toggle("is-copied", copied);
  button.setAttribute("aria-label", copied ? "Copied" : "Copy failed");
  button.title = copied ? "Copied" : "Copy failed";
  const svg = button.querySelector("svg");
  if (svg && copied) svg.replaceWith(icon("check"));
  window.clearTimeout(button._copyTimer);
  button._copyTimer = window.setTimeout(() => {
    button.classList.remove("is-copied");
    button.setAttribute("aria-label", original);
    button.title = original;
    const check = button.querySelector('svg[data-icon="check"]');
    if (check) check.replaceWith(icon("copy"));
  }, 1500);
}

/** Give every code block under `root` a copy button (in its label bar), once. */
export function addCodeCopyButtons(root) {
  root.querySelectorAll(".codeblock").forEach((block) => {
    const bar = block.querySelector(".codeblock-bar");
    if (!bar || bar.querySelector(".codeblock-copy")) return;
    const button = h(
      "button",
      {
        type: "button",
        className: "button button--small button--quiet button--icon codeblock-copy",
        "aria-label": "Copy code",
        title: "Copy code",
      },
      icon("copy")
    );
    bar.append(button);
  });
}

/** The text a copy button copies: a code block's code, or the reply's Markdown. */
export function textToCopy(button) {
  const block = button.closest(".codeblock");
  if (block) {
    const code = block.querySelector("pre code") || block.querySelector("pre");
    return code ? code.textContent : "";
  }
  const article = button.closest(".message");
  if (!article) return "";
  if (article.dataset.markdown !== undefined) return article.dataset.markdown;
  const body = article.querySelector(".message-body");
  return body ? body.textContent : "";
}
