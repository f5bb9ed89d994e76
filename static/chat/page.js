/*
 * The chat page's shared parts: its elements, configuration and state, and the screen-reader
 * status line. The other modules import these; none of them runs anything on import.
 */

export const app = document.getElementById("chat-app");
const data = app ? app.dataset : {};

export const el = {
  title: document.getElementById("conversation-title"),
  actions: document.getElementById("conversation-actions"),
  renameButton: document.getElementById("rename-button"),
  titleRegenerate: document.getElementById("title-regenerate-button"),
  deleteButton: document.getElementById("delete-button"),
  renameForm: document.getElementById("rename-form"),
  renameInput: document.getElementById("rename-input"),
  renameCancel: document.getElementById("rename-cancel"),
  list: document.getElementById("message-list"),
  sidebarList: document.getElementById("conversation-list"),
  composer: document.getElementById("composer"),
  input: document.getElementById("composer-input"),
  send: document.getElementById("send-button"),
  stop: document.getElementById("stop-button"),
  stopLabel: document.querySelector("#stop-button .stop-label"),
  hint: document.getElementById("composer-hint"),
  counter: document.getElementById("char-counter"),
  composerErrors: document.getElementById("composer-errors"),
  quota: document.getElementById("quota-status"),
  status: document.getElementById("chat-status"),
};

export const config = {
  maxChars: parseInt(data.maxChars, 10) || 0,
  homeUrl: data.homeUrl || "/",
  conversationsApi: data.conversationsApi || "/api/conversations",
  messagesApi: data.messagesApi || "/api/messages",
};

export const state = {
  conversationId: data.conversationId || "",
  titleGenerated: data.titleGenerated === "true",
  sending: false, // a POST that starts a reply is in flight
  stream: null, // the reply being streamed: see attachStream()
  stickToBottom: true, // follow the stream unless the user scrolled up
  titleTimers: [],
};

export const ACTIVE_STATUSES = ["pending", "streaming"];
// Reconnects after `stream_interrupted` without any new text in between, before the page
// stops and offers "Resume" (the server is then failing, not just a connection).
export const MAX_STREAM_INTERRUPTIONS = 5;
export const APP_NAME = "AI Chat";
export const UNTITLED = "Untitled conversation";

/** Tell screen-reader users what happened (the visually hidden role=status region). */
export function announce(text) {
  el.status.textContent = "";
  // A fresh text node after a tick makes repeated identical messages announce again.
  window.setTimeout(() => {
    el.status.textContent = text;
  }, 50);
}
