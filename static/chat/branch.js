/*
 * Showing another branch of the conversation in place (docs/ui.md, "Versions and branches"):
 * after a switch or an edit, versions.js asks the server for the messages of the branch it now
 * reads along, as HTML (GET /c/<id>/messages, rendered by templates/chat/_messages.html, the
 * template of the page itself), and this module swaps them into the list: no navigation, and
 * the same markup a reload shows. A reply being written on that branch (an edit's) is followed
 * with stream.js, like a reply found at page load.
 */
import { messageApiUrl } from "./api.js";
import { moveSidebarLinkToTop } from "./conversation.js";
import { enhanceMessages, isNearBottom, updateRegenerateButtons } from "./messages.js";
import { ACTIVE_STATUSES, app, el, state } from "./page.js";
import { attachStream } from "./stream.js";

export class BranchError extends Error {}

/** The messages of the branch the server reads along, as a fragment of server-rendered nodes. */
async function fetchBranch() {
  const url = `${app.dataset.conversationUrl}messages`;
  let response;
  try {
    response = await fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "text/html" } });
  } catch (err) {
    throw new BranchError("Could not reach the server to show the chosen version. Reload the page.");
  }
  // A redirect is the login page: the session has expired.
  if (!response.ok || response.redirected) {
    throw new BranchError("The chosen version could not be shown (your session may have expired). Reload the page.");
  }
  const template = document.createElement("template");
  template.innerHTML = await response.text(); // server-rendered, replies sanitised (as the page)
  return template.content;
}

/** Where a message's top is, in pixels from the top of the list's visible area (null: none). */
export function offsetOf(article) {
  if (!article || !article.isConnected) return null;
  return article.getBoundingClientRect().top - el.list.getBoundingClientRect().top;
}

function messageById(id) {
  return el.list.querySelector(`.message[data-message-id="${CSS.escape(String(id))}"]`);
}

/** Focus the switcher of `article`: the arrow that was used if it can be used again, else the
 * other one, else the message itself (without scrolling: the position was just set). */
function focusSwitcher(article, direction) {
  const nav = article.querySelector(".versions");
  const other = direction === "previous" ? "next" : "previous";
  const target =
    (nav && [direction, other].map((d) => nav.querySelector(`.version-${d}`)).find((b) => b && !b.disabled)) ||
    article;
  if (target === article && !article.hasAttribute("tabindex")) article.setAttribute("tabindex", "-1");
  target.focus({ preventScroll: true });
}

/**
 * Swap in the branch the server now reads along.
 *
 * `anchorId`: the message (the version just chosen, or the edited message's new version) that
 * stays where `anchorOffset` says its predecessor was on screen; its switcher gets the focus
 * (`direction`: the arrow used). `streamUrl`: the stream of the reply an edit started, and
 * `feed` its events from the edit's own response (api.js postForStream), if any.
 * Resolve to the reply being followed, if any.
 */
export async function showBranch({ anchorId, anchorOffset, direction = "previous", streamUrl = "", feed = null }) {
  const fragment = await fetchBranch();
  el.list.replaceChildren(fragment);
  enhanceMessages();
  const anchor = messageById(anchorId);
  const now = offsetOf(anchor);
  if (now !== null && anchorOffset !== null && anchorOffset !== undefined) {
    el.list.scrollTop += now - anchorOffset;
  }
  state.stickToBottom = isNearBottom();

  const writing = Array.from(el.list.querySelectorAll('.message[data-role="assistant"]')).find((node) =>
    ACTIVE_STATUSES.includes(node.dataset.status)
  );
  if (writing) {
    const url = streamUrl && streamUrl.endsWith(`/${writing.dataset.messageId}/stream`) ? streamUrl : "";
    // The edit's own response carries this reply's events (`feed`): read them, not a new stream.
    attachStream(writing, url || messageApiUrl(writing.dataset.messageId, "stream"), url ? feed : null);
    if (!url && feed) feed.abort();
    moveSidebarLinkToTop(state.conversationId);
  } else {
    if (feed) feed.abort();
    updateRegenerateButtons();
  }
  if (anchor) focusSwitcher(anchor, direction);
  return writing || null;
}
