/*
 * What the user asks for: send a message (creating the conversation first on the empty page),
 * stop the reply, regenerate or resume one, and the buttons inside the message list.
 */
import { copyText, showCopied, textToCopy } from "./copy.js";
import { api, conversationApiUrl, messageApiUrl, postForStream } from "./api.js";
import { autoGrow, setStopLabel, updateCounter, refreshQuota } from "./composer.js";
import { moveSidebarLinkToTop, refreshTitle, setTitle, upsertSidebarLink } from "./conversation.js";
import { clearComposerError, clearMessageError, showComposerError } from "./errors.js";
import {
  rate,
  removeEmptyState,
  renderAssistantPlaceholder,
  renderFinishedReply,
  renderUserMessage,
  scrollToBottom,
  showCommentForm,
  updateRegenerateButtons,
} from "./messages.js";
import { disable, enable, focusIfLost } from "./dom.js";
import { ACTIVE_STATUSES, announce, app, config, el, state } from "./page.js";
import { attachStream } from "./stream.js";

async function ensureConversation() {
  if (state.conversationId) return state.conversationId;
  const created = await api("POST", config.conversationsApi, {});
  state.conversationId = String(created.id);
  state.titleGenerated = false;
  app.dataset.conversationId = state.conversationId;
  app.dataset.conversationUrl = created.url;
  window.history.replaceState({ conversationId: created.id }, "", created.url);
  setTitle(created.title);
  el.actions.hidden = false;
  upsertSidebarLink({ id: created.id, title: created.title, url: created.url });
  return state.conversationId;
}

export async function sendMessage() {
  const content = el.input.value;
  if (state.sending || state.stream) return;
  if (content.trim() === "") {
    el.input.focus();
    return;
  }
  if (config.maxChars && content.length > config.maxChars) {
    showComposerError(
      `Your message is ${content.length} characters long; the limit is ${config.maxChars}. Shorten it and send again.`
    );
    return;
  }

  clearComposerError();
  state.sending = true;
  updateCounter();
  try {
    const conversationId = await ensureConversation();
    // One request: the reply's events come in the post's own response.
    const { result, feed } = await postForStream(`${conversationApiUrl(conversationId)}/messages`, { content });
    // Only now is the text safely stored: clear the composer.
    el.input.value = "";
    autoGrow();
    removeEmptyState();
    el.list.append(renderUserMessage(result.user_message));
    const article = renderAssistantPlaceholder(result.assistant_message);
    el.list.append(article);
    moveSidebarLinkToTop(conversationId);
    scrollToBottom(true);
    const isFirstExchange = el.list.querySelectorAll('.message[data-role="user"]').length === 1;
    if (isFirstExchange && !state.titleGenerated) refreshTitle(); // pick up the provisional title
    attachStream(article, result.stream_url || messageApiUrl(result.assistant_message.id, "stream"), feed);
  } catch (err) {
    showComposerError(err.message); // the typed text stays in the composer
    announce(err.message);
    if (err.status === 429) refreshQuota();
  } finally {
    state.sending = false;
    updateCounter();
    focusIfLost(el.input); // Send, pressed from the keyboard, was disabled meanwhile
  }
}

export async function stopReply() {
  const stream = state.stream;
  if (!stream) return;
  disable(el.stop);
  setStopLabel("Stopping…");
  try {
    await api("POST", messageApiUrl(stream.id, "stop"));
    // The stream now ends with `done` and status "cancelled".
  } catch (err) {
    if (state.stream === stream) {
      enable(el.stop);
      setStopLabel("Stop");
    }
    showComposerError(err.message);
  }
}

/** Retry: ask for a new reply to the same user message, in place of the failed one. */
async function regenerate(article, button) {
  if (state.stream || state.sending) {
    showComposerError("Wait for the current reply to finish, or stop it, before asking for another.");
    return;
  }
  clearComposerError();
  state.sending = true;
  updateCounter();
  if (button) disable(button);
  try {
    const { result, feed } = await postForStream(messageApiUrl(article.dataset.messageId, "regenerate"));
    const fresh = renderAssistantPlaceholder(result.assistant_message);
    article.replaceWith(fresh);
    // Hook for versions.js: the new reply is the latest version of its turn.
    fresh.dispatchEvent(new CustomEvent("chat:regenerated", { bubbles: true, detail: { previous: article } }));
    moveSidebarLinkToTop(state.conversationId);
    scrollToBottom(true);
    attachStream(fresh, result.stream_url || messageApiUrl(result.assistant_message.id, "stream"), feed);
  } catch (err) {
    if (button) enable(button);
    showComposerError(err.message);
    announce(err.message);
  } finally {
    state.sending = false;
    updateCounter();
  }
}

/** Retry after a lost connection: find out where the reply is, then resume or show it. */
async function resume(article, button) {
  if (button) disable(button);
  try {
    const message = await api("GET", messageApiUrl(article.dataset.messageId));
    if (ACTIVE_STATUSES.includes(message.status)) {
      article.dataset.status = message.status;
      clearMessageError(article);
      attachStream(article, messageApiUrl(article.dataset.messageId, "stream"));
    } else if (message.status === "failed" || message.status === "interrupted") {
      await regenerate(article, button);
    } else {
      renderFinishedReply(article, message);
      updateRegenerateButtons();
      // It had finished meanwhile: Retry went with the error line, so the reply's toolbar.
      focusIfLost(article.querySelector(".message-toolbar button"));
    }
  } catch (err) {
    if (button) enable(button);
    showComposerError(err.message);
  }
}

/** The buttons inside the message list: copy, feedback, Regenerate, Retry. */
export function initMessageActions() {
  el.list.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button || !el.list.contains(button)) return;
    const article = button.closest(".message");
    if (!article) return;
    if (button.classList.contains("copy-reply-button") || button.classList.contains("codeblock-copy")) {
      copyText(textToCopy(button)).then((copied) => {
        showCopied(button, copied);
        // A screen reader may not read the focused button's new name: say it in the status line.
        announce(copied ? "Copied to the clipboard." : "Could not copy to the clipboard.");
      });
    } else if (button.classList.contains("feedback-button")) {
      rate(article, button.dataset.rating).then(
        () => showCommentForm(article),
        (err) => showComposerError(err.message)
      );
    } else if (button.classList.contains("regenerate-button")) {
      regenerate(article, button);
    } else if (button.classList.contains("retry-button")) {
      if (button.dataset.action === "resume") resume(article, button);
      else regenerate(article, button);
    }
  });
}
