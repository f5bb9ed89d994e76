/*
 * The sidebar (docs/ui.md): search across your conversations' titles and messages, groups by
 * date (Pinned, Today, Yesterday, Previous 7 days, Previous 30 days, then by month), Pin and
 * Archive on each conversation, and the archived ones behind the "Show archived" toggle.
 *
 * The server renders the first list (templates/chat/_conversation_item.html); this module asks
 * GET /api/conversations?q=&archived= for every later one (the server groups it: each
 * conversation carries its `group`) and renders the same markup from
 * <template id="conversation-item-template">. chat.js still adds a new conversation or moves one
 * to the top as before; this module then lists them again, grouped.
 */
import { disable, enable, focusIsLost, fromTemplate, h } from "./dom.js";

(function () {
  const app = document.getElementById("chat-app");
  const list = document.getElementById("conversation-list");
  const search = document.getElementById("conversation-search");
  const toggle = document.getElementById("archived-toggle");
  if (!app || !list || !search || !toggle) return;
  const api = app.dataset.conversationsApi || "/api/conversations";
  const UNTITLED = "Untitled conversation";
  const SEARCH_DELAY_MS = 200;

  const state = { query: "", archived: false, timer: 0, seq: 0, focusAfter: null };
  // chat.js added a conversation, moved one to the top or renamed one: list them again, grouped.
  const observer = new MutationObserver(() => refreshSoon(50));

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  async function request(method, url, body) {
    const init = {
      method,
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "application/json" },
    };
    if (method !== "GET") {
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRFToken"] = csrfToken();
      init.body = JSON.stringify(body || {});
    }
    const response = await fetch(url, init);
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok || data === null) {
      const error = data && data.error;
      throw new Error((error && error.message) || "The list of conversations could not be loaded.");
    }
    return data;
  }

  function currentId() {
    const match = window.location.pathname.match(/\/c\/(\d+)\/?$/);
    return match ? match[1] : app.dataset.conversationId || "";
  }

  function item(conversation) {
    const node = fromTemplate("conversation-item-template");
    const id = String(conversation.id);
    const title = conversation.title || UNTITLED;
    node.dataset.conversationId = id;
    node.classList.toggle("is-pinned", conversation.pinned);
    const link = node.querySelector(".conversation-link");
    link.href = conversation.url;
    link.title = title;
    link.querySelector(".conversation-link-text").textContent = title;
    link.dataset.conversationId = id;
    if (id === currentId()) {
      link.classList.add("is-current");
      link.setAttribute("aria-current", "page");
    }
    setButton(node.querySelector(".pin-button"), "pinned", conversation.pinned, "Unpin", "Pin");
    setButton(node.querySelector(".archive-button"), "archived", conversation.archived, "Unarchive", "Archive");
    return node;
  }

  function setButton(button, flag, on, onLabel, offLabel) {
    button.dataset[flag] = String(on);
    if (flag === "pinned") button.setAttribute("aria-pressed", String(on));
    button.setAttribute("aria-label", on ? onLabel : offLabel);
    button.title = on ? onLabel : offLabel;
  }

  function emptyText() {
    if (state.query) return `No conversations match "${state.query}".`;
    return state.archived ? "No archived conversations." : "No conversations yet.";
  }

  function render(conversations) {
    const nodes = [];
    let group = null;
    for (const conversation of conversations) {
      if (conversation.group !== group) {
        group = conversation.group;
        nodes.push(
          h("li", { className: "conversation-group" }, h("h2", { className: "conversation-group-title", text: group }))
        );
      }
      nodes.push(item(conversation));
    }
    if (!nodes.length) nodes.push(h("li", { className: "conversation-empty", id: "conversation-empty", text: emptyText() }));
    replaceList(nodes);
    list.dataset.archived = String(state.archived);
  }

  const CONTROLS = ["conversation-link", "pin-button", "archive-button"];

  /** Which control of which conversation has the keyboard's focus, if one in the list has it. */
  function focusedControl() {
    const active = document.activeElement;
    if (!active || !list.contains(active)) return null;
    const control = CONTROLS.find((name) => active.classList.contains(name));
    const link = active.closest(".conversation-item")?.querySelector(".conversation-link");
    if (!control || !link) return null;
    const items = [...list.querySelectorAll(".conversation-item")];
    return { control, id: link.dataset.conversationId, index: items.indexOf(link.closest(".conversation-item")) };
  }

  /**
   * Give the focus back after the list is made again: to the same control of the same
   * conversation, or (it left the list: archived, say) to that control of the one now in its
   * place, or to the search field. A keyboard user is never dropped at the top of the page.
   */
  function restoreFocus(was) {
    if (!was) return;
    const items = [...list.querySelectorAll(".conversation-item")];
    const same = items.find((item) => item.querySelector(".conversation-link")?.dataset.conversationId === was.id);
    const near = same || items[Math.min(was.index, items.length - 1)];
    const target = (near && near.querySelector(`.${was.control}`)) || search;
    target.focus({ preventScroll: true });
  }

  function replaceList(nodes) {
    // The remembered place counts only while the focus is lost, never over where it went since.
    const was = focusedControl() || (focusIsLost() ? state.focusAfter : null);
    state.focusAfter = null;
    list.replaceChildren(...nodes);
    restoreFocus(was);
    list.setAttribute("aria-busy", "false");
    observer.takeRecords(); // our own change: nothing to list again
  }

  async function refresh() {
    const seq = ++state.seq;
    const params = new URLSearchParams();
    if (state.query) params.set("q", state.query);
    if (state.archived) params.set("archived", "true");
    list.setAttribute("aria-busy", "true");
    try {
      const data = await request("GET", `${api}${params.toString() ? "?" + params : ""}`);
      if (seq === state.seq) render(data.conversations); // an older answer never wins
    } catch (err) {
      if (seq !== state.seq) return;
      // The alert is inside the item: a <ul> holds list items only (axe's "list" rule).
      replaceList([h("li", { className: "conversation-empty conversation-error" }, h("span", { role: "alert", text: err.message }))]);
    }
  }

  function refreshSoon(delay) {
    clearTimeout(state.timer);
    state.timer = setTimeout(refresh, delay);
  }

  search.addEventListener("input", () => {
    state.query = search.value.trim();
    refreshSoon(SEARCH_DELAY_MS);
  });
  search.form.addEventListener("submit", (event) => {
    event.preventDefault();
    state.query = search.value.trim();
    refreshSoon(0);
  });
  search.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && search.value) {
      event.preventDefault();
      event.stopPropagation();
      search.value = "";
      state.query = "";
      refreshSoon(0);
    }
  });

  toggle.addEventListener("click", () => {
    state.archived = !state.archived;
    toggle.setAttribute("aria-pressed", String(state.archived));
    toggle.textContent = state.archived ? "Hide archived" : "Show archived";
    refreshSoon(0);
  });

  list.addEventListener("click", async (event) => {
    const button = event.target.closest(".pin-button, .archive-button");
    if (!button) return;
    event.preventDefault();
    const id = button.closest(".conversation-item").dataset.conversationId;
    const body = button.classList.contains("pin-button")
      ? { pinned: button.dataset.pinned !== "true" }
      : { archived: button.dataset.archived !== "true" };
    // Disabling the focused button moves the focus to the page: say where it was first (the list
    // made again gives it to the new button; a failure, to this one).
    state.focusAfter = focusedControl();
    disable(button);
    try {
      await request("PATCH", `${api}/${encodeURIComponent(id)}`, body);
      await refresh();
    } catch (err) {
      enable(button);
      state.focusAfter = null;
      const errors = document.getElementById("composer-errors");
      if (errors) errors.replaceChildren(h("p", { className: "error-line", role: "alert" }, h("span", { className: "error-text", text: err.message })));
    }
  });

  observer.observe(list, { childList: true, subtree: true });
})();
