/*
 * The conversation around the messages: its title (and the generated one), its entry in the
 * sidebar's list, Regenerate title, Rename and Delete.
 */
import { disable, enable, h } from "./dom.js";
import { api, conversationApiUrl } from "./api.js";
import { refreshQuota } from "./composer.js";
import { clearComposerError, showComposerError } from "./errors.js";
import { APP_NAME, UNTITLED, announce, config, el, state } from "./page.js";

export function setTitle(title) {
  const shown = title || UNTITLED;
  el.title.textContent = shown;
  document.title = `${shown} · ${APP_NAME}`;
}

function sidebarLink(id) {
  return el.sidebarList.querySelector(`.conversation-link[data-conversation-id="${CSS.escape(String(id))}"]`);
}

export function upsertSidebarLink({ id, title, url }) {
  let link = sidebarLink(id);
  if (!link) {
    const empty = document.getElementById("conversation-empty");
    if (empty) empty.remove();
    const now = new Date();
    link = h("a", { className: "conversation-link", href: url, dataset: { conversationId: id } });
    const item = h(
      "li",
      { className: "conversation-item" },
      link,
      h("time", {
        className: "conversation-time",
        datetime: now.toISOString(),
        text: now.toLocaleDateString("en-US", { month: "short", day: "numeric", timeZone: "UTC" }),
      })
    );
    el.sidebarList.prepend(item);
  }
  setLinkTitle(link, title);
  markCurrent(id);
  return link;
}

/** The sidebar's entry shows (and its tooltip holds) the whole title. */
function setLinkTitle(link, title) {
  const shown = title || UNTITLED;
  const text = link.querySelector(".conversation-link-text");
  if (text) text.textContent = shown;
  else link.textContent = shown;
  link.title = shown;
}

function markCurrent(id) {
  el.sidebarList.querySelectorAll(".conversation-link").forEach((link) => {
    const current = link.dataset.conversationId === String(id);
    link.classList.toggle("is-current", current);
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  });
}

export function moveSidebarLinkToTop(id) {
  const link = sidebarLink(id);
  if (!link) return;
  const item = link.closest("li");
  if (item && item !== el.sidebarList.firstElementChild) el.sidebarList.prepend(item);
}

function applyConversation(conversation) {
  setTitle(conversation.title);
  const link = sidebarLink(conversation.id);
  if (link) setLinkTitle(link, conversation.title);
  if (conversation.title_generated) state.titleGenerated = true;
}

/** Ask the model to name the conversation again from the branch shown (POST .../title). */
async function regenerateTitle() {
  const id = state.conversationId;
  const button = el.titleRegenerate;
  if (!id || button.getAttribute("aria-busy") === "true") return;
  button.setAttribute("aria-busy", "true");
  button.setAttribute("aria-disabled", "true"); // not `disabled`: the focus stays on the button
  announce("Asking the model for a new title…");
  try {
    const conversation = await api("POST", `${conversationApiUrl(id)}/title`);
    clearComposerError();
    if (state.conversationId === String(conversation.id) && !isRenaming()) applyConversation(conversation);
    announce(`New title: ${conversation.title}`);
  } catch (err) {
    showComposerError(err.message);
    announce(err.message);
  } finally {
    button.removeAttribute("aria-busy");
    button.removeAttribute("aria-disabled");
    refreshQuota(); // the title call counts toward the quotas
  }
}

export async function refreshTitle() {
  const id = state.conversationId;
  if (!id) return;
  try {
    const conversation = await api("GET", conversationApiUrl(id));
    if (state.conversationId === String(conversation.id) && !isRenaming()) applyConversation(conversation);
  } catch (err) {
    // A missed title refresh is harmless: the next page load shows the title.
  }
}

/**
 * The title is generated after the first exchange, by a call to the model that can take a while
 * (a slow model, retries): look for it less and less often, for a minute, then leave it to the
 * next page load. Each look is one small GET, and none once the title is there.
 */
const TITLE_LOOKS_MS = [1500, 4000, 8000, 15000, 30000, 60000];

export function scheduleTitleRefresh() {
  state.titleTimers.forEach((timer) => window.clearTimeout(timer));
  state.titleTimers = TITLE_LOOKS_MS.map((delay) =>
    window.setTimeout(() => {
      if (!state.titleGenerated) refreshTitle();
    }, delay)
  );
}

function isRenaming() {
  return !el.renameForm.hidden;
}

function openRename() {
  el.renameInput.value = el.title.textContent === UNTITLED ? "" : el.title.textContent;
  el.title.hidden = true;
  el.actions.hidden = true;
  el.renameForm.hidden = false;
  el.renameInput.focus();
  el.renameInput.select();
}

function closeRename() {
  el.renameForm.hidden = true;
  el.title.hidden = false;
  el.actions.hidden = !state.conversationId;
  el.renameButton.focus();
}

/** Regenerate title, Rename (Enter saves, Escape cancels) and Delete; `beforeLeave` runs before the page goes home. */
export function initConversationActions({ beforeLeave }) {
  el.renameButton.addEventListener("click", openRename);
  if (el.titleRegenerate) el.titleRegenerate.addEventListener("click", regenerateTitle);
  el.renameCancel.addEventListener("click", closeRename);
  el.renameInput.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      closeRename();
    }
  });

  el.renameForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const title = el.renameInput.value.trim();
    if (!title) {
      showComposerError("A conversation title cannot be empty.");
      el.renameInput.focus();
      return;
    }
    const submit = el.renameForm.querySelector('button[type="submit"]');
    submit.disabled = true;
    try {
      const conversation = await api("PATCH", conversationApiUrl(state.conversationId), { title });
      clearComposerError();
      state.titleGenerated = true; // a name the user chose is never replaced
      applyConversation(conversation);
      closeRename();
      announce("Conversation renamed.");
    } catch (err) {
      showComposerError(err.message);
      el.renameInput.focus();
    } finally {
      submit.disabled = false;
    }
  });

  el.deleteButton.addEventListener("click", async () => {
    if (!state.conversationId) return;
    const name = el.title.textContent;
    if (!window.confirm(`Delete “${name}”? This cannot be undone.`)) return;
    disable(el.deleteButton);
    try {
      await api("DELETE", conversationApiUrl(state.conversationId));
      beforeLeave();
      window.location.assign(config.homeUrl);
    } catch (err) {
      enable(el.deleteButton);
      showComposerError(err.message);
    }
  });
}
