/*
 * Versions and branches on the chat page (docs/ui.md): the "< 2/3 >" switcher of a turn with
 * several versions (Regenerate, Edit), and Edit on a sent message, which asks again from there
 * as a new branch. The server stores the choice (POST /api/messages/<id>/select); branch.js then
 * shows the branch it reads along in place (the messages as the page renders them, no reload),
 * and follows the reply an edit started.
 *
 * A module of its own beside chat.js; the only hook there is the `chat:regenerated` event a
 * live Regenerate dispatches, after which the new reply gets the switcher of its turn.
 */
import { api, messageApiUrl, postForStream } from "./api.js";
import { BranchError, offsetOf, showBranch } from "./branch.js";
import { updateCounter } from "./composer.js";
import { disable, enable, focusIfLost, fromTemplate, h } from "./dom.js";
import { clearComposerError, showComposerError } from "./errors.js";
import { announce, state } from "./page.js";

(function () {
  const app = document.getElementById("chat-app");
  const list = document.getElementById("message-list");
  if (!app || !list) return;
  const ACTIVE = '.message[data-status="pending"], .message[data-status="streaming"]';

  function busy() {
    return state.stream !== null || state.sending || list.querySelector(ACTIVE) !== null;
  }

  // ---------------------------------------------------------------------------------------------
  // The switcher

  async function select(button) {
    if (busy()) {
      showComposerError("Wait for the reply being written (or stop it) before switching versions.");
      return;
    }
    const nav = button.closest(".versions");
    const article = nav.closest(".message");
    const direction = button.classList.contains("version-previous") ? "previous" : "next";
    const offset = offsetOf(article);
    nav.querySelectorAll("button").forEach((b) => (b.disabled = true));
    state.sending = true; // no post, regenerate or second switch until the branch is shown
    updateCounter();
    try {
      await api("POST", messageApiUrl(button.dataset.selectId, "select"));
      clearComposerError();
      await showBranch({ anchorId: button.dataset.selectId, anchorOffset: offset, direction });
      const label = list.querySelector(`#message-${CSS.escape(button.dataset.selectId)} .version-label`);
      announce(label ? `Showing version ${label.textContent.replace("/", " of ")}.` : "Version shown.");
    } catch (err) {
      showComposerError(err.message);
      // A BranchError: the server chose the version but the page could not show it (reload).
      if (!(err instanceof BranchError)) {
        renderSwitcher(nav, idsOf(nav), indexOf(nav)); // the arrows as they were
        focusIfLost(nav.querySelector(`.version-${direction}`));
      }
    } finally {
      state.sending = false;
      updateCounter();
    }
  }

  function idsOf(nav) {
    return (nav.dataset.versionIds || "").split(",").filter(Boolean);
  }

  function indexOf(nav) {
    return parseInt(nav.dataset.index || "0", 10) || idsOf(nav).indexOf(nav.closest(".message").dataset.messageId) + 1;
  }

  function arrow(direction, id) {
    const previous = direction === "previous";
    return h("button", {
      type: "button",
      className: `button button--small button--quiet button--icon version-button version-${direction}`,
      "aria-label": previous ? "Previous version" : "Next version",
      title: previous ? "Previous version" : "Next version",
      dataset: id ? { selectId: id } : undefined,
      disabled: !id,
      text: previous ? "‹" : "›",
    });
  }

  /** Fill (or refill) a switcher: ids oldest first, index 1-based (as _versions.html renders). */
  function renderSwitcher(nav, ids, index) {
    nav.dataset.versionIds = ids.join(",");
    nav.dataset.index = String(index);
    nav.setAttribute("aria-label", `Version ${index} of ${ids.length}`);
    nav.replaceChildren(
      arrow("previous", index > 1 ? ids[index - 2] : null),
      h("span", { className: "version-label", text: `${index}/${ids.length}` }),
      arrow("next", index < ids.length ? ids[index] : null)
    );
  }

  /** A live Regenerate: the new reply is the last version of its turn. */
  list.addEventListener("chat:regenerated", (event) => {
    const fresh = event.target;
    const previous = event.detail && event.detail.previous;
    const old = previous && previous.querySelector(".versions");
    const ids = old ? idsOf(old) : previous ? [previous.dataset.messageId] : [];
    ids.push(fresh.dataset.messageId);
    // A group, not a landmark: a page with several switchers would have many "Versions" landmarks.
    const nav = h("div", { className: "versions", role: "group" });
    renderSwitcher(nav, ids, ids.length);
    fresh.querySelector(".message-header").append(nav);
  });

  // ---------------------------------------------------------------------------------------------
  // Edit a sent message

  function addEditButton(article) {
    if (article.querySelector(".user-actions")) return;
    const actions = fromTemplate("edit-template");
    if (actions) article.append(actions);
  }

  function textOf(article) {
    if (article.dataset.content !== undefined) return article.dataset.content;
    const body = article.querySelector(".message-body");
    return body ? body.innerText : "";
  }

  function openEditor(article) {
    if (article.querySelector(".edit-form")) return;
    const input = h("textarea", { className: "edit-input", name: "content", rows: "3", "aria-label": "Edited message" });
    input.value = textOf(article);
    const form = h(
      "form",
      { className: "edit-form" },
      input,
      h(
        "div",
        { className: "edit-form-actions" },
        h("button", { type: "submit", className: "button button--primary button--small", text: "Send" }),
        h("button", { type: "button", className: "button button--small edit-cancel", text: "Cancel" })
      ),
      h("p", { className: "edit-hint", text: "Sends the edited message as a new branch; the earlier one stays under the arrows." })
    );
    article.classList.add("is-editing");
    article.querySelector(".message-body").after(form);
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      sendEdit(article, form, input.value);
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") closeEditor(article);
      else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
  }

  function closeEditor(article) {
    const form = article.querySelector(".edit-form");
    const hadFocus = !!form && form.contains(document.activeElement);
    if (form) form.remove();
    article.classList.remove("is-editing");
    // The box went with the focus in it: back to the Edit button that opened it (shown again).
    if (hadFocus) article.querySelector(".edit-button")?.focus();
  }

  async function sendEdit(article, form, content) {
    if (busy()) {
      showComposerError("Wait for the reply being written (or stop it) before editing a message.");
      return;
    }
    const controls = [...form.querySelectorAll("button, textarea")];
    disable(...controls);
    const offset = offsetOf(article);
    state.sending = true;
    updateCounter();
    let result, feed;
    try {
      // One request: the new reply's events come in the edit's own response.
      ({ result, feed } = await postForStream(messageApiUrl(article.dataset.messageId, "edit"), { content }));
    } catch (err) {
      enable(...controls);
      showComposerError(err.message);
      state.sending = false;
      updateCounter();
      return;
    }
    try {
      clearComposerError();
      // The new branch, its reply followed as it is written.
      await showBranch({ anchorId: result.user_message.id, anchorOffset: offset, streamUrl: result.stream_url, feed });
    } catch (err) {
      if (feed) feed.abort(); // the page still shows the old branch: a reload reads the new one
      showComposerError(err.message);
    } finally {
      state.sending = false;
      updateCounter();
    }
  }

  list.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button || !list.contains(button)) return;
    const article = button.closest(".message");
    if (!article) return;
    if (button.classList.contains("version-button") && button.dataset.selectId) {
      select(button);
    } else if (button.classList.contains("edit-button")) {
      openEditor(article);
    } else if (button.classList.contains("edit-cancel")) {
      closeEditor(article);
    }
  });

  list.querySelectorAll(".message--user").forEach(addEditButton);
  // User messages chat.js adds while the page is open get their Edit button too.
  new MutationObserver((records) => {
    for (const record of records) {
      record.addedNodes.forEach((node) => {
        if (node.nodeType === 1 && node.matches(".message--user")) addEditButton(node);
      });
    }
  }).observe(list, { childList: true });
})();
