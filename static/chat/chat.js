/*
 * The chat page: composer, streaming replies over Server-Sent Events, conversation actions.
 *
 * Plain ES2020 modules, no framework, no build step. The page is server-rendered
 * (templates/chat/chat.html); this script only enhances it. Beside it: dom.js (helpers), footer.js
 * (stats and the reply toolbar), copy.js (copy buttons), waiting.js (waiting states); theme.js is
 * a classic script loaded in <head>. The site's Content-Security-Policy forbids inline scripts and
 * inline style attributes, so everything here works on classes, attributes and the CSSOM.
 *
 * Streamed text is only ever written with textContent. Server HTML (already sanitised by
 * chat.rendering) is inserted with innerHTML only from the `done` event and the message API.
 */
import { addCodeCopyButtons, copyText, showCopied, textToCopy } from "./copy.js";
import { h } from "./dom.js";
import { FINISHED, addRegenerate, ensureToolbar, setStats, setStoppedBadge, tokensPerSecond } from "./footer.js";
import { waitingIndicator } from "./waiting.js";

(function () {

  const app = document.getElementById("chat-app");
  if (!app) {
    return; // login and sign-up pages load this file too
  }

  // ---------------------------------------------------------------------------------------------
  // Elements and state

  const el = {
    title: document.getElementById("conversation-title"),
    actions: document.getElementById("conversation-actions"),
    renameButton: document.getElementById("rename-button"),
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

  const config = {
    maxChars: parseInt(app.dataset.maxChars, 10) || 0,
    homeUrl: app.dataset.homeUrl || "/",
    conversationsApi: app.dataset.conversationsApi || "/api/conversations",
    messagesApi: app.dataset.messagesApi || "/api/messages",
  };

  const state = {
    conversationId: app.dataset.conversationId || "",
    titleGenerated: app.dataset.titleGenerated === "true",
    sending: false, // a POST that starts a reply is in flight
    stream: null, // the reply being streamed: see attachStream()
    stickToBottom: true, // follow the stream unless the user scrolled up
    titleTimers: [],
  };

  const ACTIVE_STATUSES = ["pending", "streaming"];
  // Reconnects after `stream_interrupted` without any new text in between, before the page
  // stops and offers "Resume" (the server is then failing, not just a connection).
  const MAX_STREAM_INTERRUPTIONS = 5;
  const APP_NAME = "AI Chat";
  const UNTITLED = "Untitled conversation";

  // ---------------------------------------------------------------------------------------------
  // Small helpers

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function conversationApiUrl(id) {
    return `${config.conversationsApi}/${encodeURIComponent(id)}`;
  }

  function messageApiUrl(id, action) {
    const base = `${config.messagesApi}/${encodeURIComponent(id)}`;
    return action ? `${base}/${action}` : base;
  }

  /** Tell screen-reader users what happened (the visually hidden role=status region). */
  function announce(text) {
    el.status.textContent = "";
    // A fresh text node after a tick makes repeated identical messages announce again.
    window.setTimeout(() => {
      el.status.textContent = text;
    }, 50);
  }

  class ApiError extends Error {
    constructor(code, message, status) {
      super(message);
      this.code = code;
      this.status = status;
    }
  }

  /** Call the JSON API. Resolve to the parsed body (null for 204); reject with an ApiError. */
  async function api(method, url, body) {
    const headers = { Accept: "application/json" };
    const init = { method, headers, credentials: "same-origin", cache: "no-store" };
    if (method !== "GET" && method !== "HEAD") headers["X-CSRFToken"] = csrfToken();
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }

    let response;
    try {
      response = await fetch(url, init);
    } catch (err) {
      throw new ApiError(
        "network_error",
        "Could not reach the server. Check your connection and try again.",
        0
      );
    }
    if (response.status === 204) return null;

    const isJson = (response.headers.get("Content-Type") || "").includes("application/json");
    let data = null;
    if (isJson) {
      try {
        data = await response.json();
      } catch (err) {
        data = null;
      }
    }
    if (!response.ok) {
      const error = data && data.error;
      throw new ApiError(
        (error && error.code) || `http_${response.status}`,
        (error && error.message) ||
          `The server answered ${response.status}${response.statusText ? " " + response.statusText : ""}.`,
        response.status
      );
    }
    if (data === null) {
      // Typically a redirect to the login page after the session expired.
      throw new ApiError(
        "unexpected_response",
        "The server sent an unexpected answer. Your session may have expired: reload the page.",
        response.status
      );
    }
    return data;
  }

  // ---------------------------------------------------------------------------------------------
  // Error lines

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
  function showComposerError(message) {
    el.composerErrors.replaceChildren(errorLine(message));
  }

  function clearComposerError() {
    el.composerErrors.replaceChildren();
  }

  /** Show an error inside a reply, with a Retry button, replacing any earlier one. */
  function showMessageError(article, message, retryAction) {
    clearMessageError(article);
    const body = article.querySelector(".message-body");
    body.after(errorLine(message, retryAction === false ? null : retryAction || "regenerate"));
  }

  function clearMessageError(article) {
    article.querySelectorAll(".error-line").forEach((node) => node.remove());
  }

  function setNotice(article, text) {
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

  // ---------------------------------------------------------------------------------------------
  // Rendering messages

  function removeEmptyState() {
    const empty = document.getElementById("empty-state");
    if (empty) empty.remove();
  }

  function renderUserMessage(message) {
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

  function renderAssistantPlaceholder(message) {
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

  async function rate(article, rating, comment) {
    const body = { rating };
    if (comment !== undefined) body.comment = comment;
    const result = await api("POST", messageApiUrl(article.dataset.messageId, "feedback"), body);
    article.dataset.feedback = result.feedback.rating;
    article.querySelectorAll(".feedback-button").forEach((button) => {
      button.setAttribute("aria-pressed", String(button.dataset.rating === result.feedback.rating));
    });
    return result.feedback;
  }

  function showCommentForm(article) {
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
        form.replaceWith(h("span", { className: "feedback-thanks", text: "Thanks for the feedback." }));
      } catch (err) {
        showComposerError(err.message);
      }
    });
    group.append(form);
  }

  /** Every finished reply has its toolbar; only the last one offers Regenerate. */
  function updateRegenerateButtons() {
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
  function renderFinishedReply(article, message) {
    const body = article.querySelector(".message-body");
    body.removeAttribute("aria-busy");
    body.classList.remove("is-streaming");
    article.dataset.status = message.status;
    if (message.html) {
      body.classList.add("markdown");
      body.innerHTML = message.html; // sanitised by the server
      addCodeCopyButtons(body);
    } else {
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

  function isNearBottom() {
    return el.list.scrollHeight - el.list.scrollTop - el.list.clientHeight < 48;
  }

  function scrollToBottom(force) {
    if (force || state.stickToBottom) {
      el.list.scrollTop = el.list.scrollHeight;
      state.stickToBottom = true;
    }
  }

  el.list.addEventListener("scroll", () => {
    state.stickToBottom = isNearBottom();
  }, { passive: true });

  // ---------------------------------------------------------------------------------------------
  // Composer

  function updateCounter() {
    const length = el.input.value.length;
    el.counter.textContent = config.maxChars ? `${length} / ${config.maxChars}` : String(length);
    const over = config.maxChars > 0 && length > config.maxChars;
    el.counter.classList.toggle("is-over", over);
    el.input.setAttribute("aria-invalid", over ? "true" : "false");
    // Send stays enabled for an empty or long text: submitting explains instead of doing nothing.
    el.send.disabled = state.sending;
  }

  function autoGrow() {
    if (window.CSS && CSS.supports && CSS.supports("field-sizing", "content")) return;
    el.input.style.height = "auto"; // CSSOM writes are allowed by the style-src CSP
    el.input.style.height = `${Math.min(el.input.scrollHeight + 2, window.innerHeight * 0.4)}px`;
  }

  const HINT = el.hint ? el.hint.textContent : "";
  const STREAMING_HINT = "A reply is being written: Escape or Stop ends it · Enter sends once it is done";

  function setStopLabel(text) {
    if (el.stopLabel) el.stopLabel.textContent = text;
    else el.stop.textContent = text;
  }

  /**
   * While a reply streams Send becomes Stop, but the composer keeps the focus and stays editable:
   * the next question can be typed meanwhile, and Enter then sends nothing and stops nothing (the
   * text stays). Only Escape or a click on Stop stops the reply.
   */
  function setStreamingUi(streaming) {
    const hadFocus = document.activeElement === el.send || document.activeElement === el.stop;
    el.send.hidden = streaming;
    el.stop.hidden = !streaming;
    el.stop.disabled = false;
    setStopLabel("Stop");
    if (el.hint) el.hint.textContent = streaming ? STREAMING_HINT : HINT;
    el.list.setAttribute("aria-busy", streaming ? "true" : "false");
    updateCounter();
    const focus = document.activeElement;
    // The button that had the focus was just hidden: give it to the message box, not the page.
    if (hadFocus || !focus || focus === document.body) el.input.focus();
  }

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

  async function sendMessage() {
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
      const result = await api("POST", `${conversationApiUrl(conversationId)}/messages`, { content });
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
      attachStream(article, result.stream_url || messageApiUrl(result.assistant_message.id, "stream"));
    } catch (err) {
      showComposerError(err.message); // the typed text stays in the composer
      announce(err.message);
      if (err.status === 429) refreshQuota();
    } finally {
      state.sending = false;
      updateCounter();
    }
  }

  el.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    sendMessage();
  });

  el.input.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.isComposing || event.keyCode === 229) return;
    if (event.shiftKey) return; // Shift+Enter: a new line
    event.preventDefault();
    sendMessage();
  });

  el.input.addEventListener("input", () => {
    updateCounter();
    autoGrow();
  });

  el.stop.addEventListener("click", () => stopReply());

  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.stream && !event.defaultPrevented && !el.renameForm.contains(event.target)) {
      stopReply();
    }
  });

  // ---------------------------------------------------------------------------------------------
  // Streaming a reply

  /**
   * Open an EventSource on a reply and render it as it arrives.
   *
   * Each delta's `id` is the character offset reached after it. EventSource sends the last one back
   * as Last-Event-ID when it reconnects by itself, and the server resumes from there; a brand-new
   * EventSource (page load, Retry after a lost connection) replays from offset 0. Placing each delta
   * at (offset - its length) makes both cases, and any overlap, come out exactly right.
   */
  function attachStream(article, url) {
    if (state.stream) detachStream();
    const body = article.querySelector(".message-body");
    const stream = {
      id: article.dataset.messageId,
      article,
      body,
      text: body.textContent || "",
      // Offsets count Unicode code points (as the server does), not UTF-16 units.
      length: Array.from(body.textContent || "").length,
      frame: 0,
      source: null,
      interruptions: 0, // stream_interrupted in a row without new text (see the error listener)
      waiting: null, // "Thinking…" / "Still waiting for the model…" (waiting.js)
    };
    state.stream = stream;
    body.classList.add("is-streaming");
    body.classList.remove("markdown", "is-plain");
    body.setAttribute("aria-busy", "true");
    clearMessageError(article);
    setStoppedBadge(article, false);
    updateRegenerateButtons();
    setStreamingUi(true);
    stream.waiting = waitingIndicator(article, stream.length > 0);
    announce("The assistant is replying.");

    const source = new EventSource(url);
    stream.source = source;

    source.addEventListener("open", () => {
      if (state.stream === stream) setNotice(article, "");
    });

    source.addEventListener("delta", (event) => {
      if (state.stream !== stream) return;
      let data;
      try {
        data = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      const text = typeof data.text === "string" ? data.text : "";
      const size = Array.from(text).length;
      const end = parseInt(event.lastEventId, 10);
      const start = Number.isFinite(end) ? end - size : stream.length;
      if (start === stream.length || start < 0 || start > stream.length) {
        stream.text += text;
        stream.length += size;
      } else {
        // A replay or an overlap: put the delta at its offset.
        stream.text = Array.from(stream.text).slice(0, start).join("") + text;
        stream.length = start + size;
      }
      if (article.dataset.status === "pending") article.dataset.status = "streaming";
      if (size > 0) {
        stream.interruptions = 0;
        stream.waiting.text();
      }
      setNotice(article, "");
      scheduleRender(stream);
    });

    source.addEventListener("done", (event) => {
      if (state.stream !== stream) return;
      let data = {};
      try {
        data = JSON.parse(event.data);
      } catch (err) {
        data = {};
      }
      finishStream(stream);
      onDone(stream, data);
    });

    // One listener gets both the server's `event: error` (a MessageEvent with data) and the
    // EventSource's own network errors (a plain Event).
    source.addEventListener("error", (event) => {
      if (state.stream !== stream) return;
      if (typeof event.data === "string") {
        let data = {};
        try {
          data = JSON.parse(event.data);
        } catch (err) {
          data = {};
        }
        if (data.code === "stream_interrupted" && stream.interruptions < MAX_STREAM_INTERRUPTIONS) {
          // The server lost its feed of the reply (not the reply itself) and closes the stream;
          // the event has no id, so EventSource reconnects with the offset of the last delta
          // and the server resumes from there. A few in a row without new text: give up.
          stream.interruptions += 1;
          setNotice(article, "Connection interrupted. Reconnecting…");
          return;
        }
        finishStream(stream);
        if (data.code === "stream_interrupted") {
          article.dataset.status = "interrupted";
          showMessageError(article, "The connection to the server was lost before the reply finished.", "resume");
          announce("The connection was lost before the reply finished.");
          return;
        }
        onStreamError(stream, data);
        return;
      }
      if (source.readyState === EventSource.CONNECTING) {
        // The browser reconnects by itself with Last-Event-ID; the server resumes exactly.
        setNotice(article, "Connection lost. Reconnecting…");
        return;
      }
      finishStream(stream);
      article.dataset.status = "interrupted";
      showMessageError(article, "The connection to the server was lost before the reply finished.", "resume");
      announce("The connection was lost before the reply finished.");
    });
  }

  function scheduleRender(stream) {
    if (stream.frame) return;
    stream.frame = window.requestAnimationFrame(() => {
      stream.frame = 0;
      renderStreamText(stream);
    });
  }

  function renderStreamText(stream) {
    stream.body.textContent = stream.text; // plain text only while streaming
    scrollToBottom(false);
  }

  /** Close the EventSource, flush pending text and give the composer back. */
  function finishStream(stream) {
    if (stream.source) stream.source.close();
    if (stream.frame) {
      window.cancelAnimationFrame(stream.frame);
      stream.frame = 0;
    }
    renderStreamText(stream);
    stream.waiting.end();
    stream.body.removeAttribute("aria-busy");
    setNotice(stream.article, "");
    if (state.stream === stream) state.stream = null;
    setStreamingUi(false);
  }

  function detachStream() {
    const stream = state.stream;
    if (!stream) return;
    if (stream.source) stream.source.close();
    if (stream.frame) window.cancelAnimationFrame(stream.frame);
    stream.waiting.end();
    state.stream = null;
  }

  function onDone(stream, data) {
    const { article, body } = stream;
    const status = data.status || "completed";
    article.dataset.status = status;
    body.classList.remove("is-streaming");
    if (data.html) {
      body.classList.add("markdown");
      body.innerHTML = data.html; // sanitised by the server
      addCodeCopyButtons(body);
    } else {
      body.classList.add("is-plain"); // keep the streamed text
    }
    // The streamed text is the reply's Markdown, exactly (offsets make it so): the copy button's.
    if (FINISHED.includes(status)) article.dataset.markdown = stream.text;
    setStoppedBadge(article, status === "cancelled");

    if (status === "completed" || status === "cancelled") {
      const usage = data.usage || {};
      setStats(article, {
        model: data.model,
        outputTokens: usage.output_tokens,
        estimated: usage.estimated,
        ttftMs: data.ttft_ms,
        latencyMs: data.latency_ms,
        tokensPerSecond: tokensPerSecond(usage.output_tokens, data.latency_ms, data.ttft_ms),
      });
      announce(status === "cancelled" ? "Reply stopped." : "Reply complete.");
    } else {
      showMessageError(article, "The reply could not be completed.", "regenerate");
    }
    updateRegenerateButtons();
    scrollToBottom(false);
    if (!state.titleGenerated) scheduleTitleRefresh();
    refreshQuota();
  }

  function onStreamError(stream, data) {
    const { article, body } = stream;
    article.dataset.status = data.status || "failed";
    body.classList.remove("is-streaming");
    body.classList.add("is-plain"); // keep any partial text
    const message = data.message || "The reply could not be completed.";
    // A reached quota names its reset time; a Retry button would only fail again until then.
    showMessageError(article, message, data.code === "quota_exceeded" ? false : "regenerate");
    announce(message);
    updateRegenerateButtons();
    scrollToBottom(false);
    refreshQuota();
  }

  // ---------------------------------------------------------------------------------------------
  // Remaining quota (under the composer)

  async function refreshQuota() {
    if (!el.quota) return;
    let data;
    try {
      data = await api("GET", el.quota.dataset.url);
    } catch (err) {
      return; // the line keeps its last value
    }
    const parts = [];
    if (data.global_cap_reached) {
      parts.push(h("span", { className: "quota-meter quota-meter--low", text: "The service has reached its daily AI spending cap." }));
    }
    for (const meter of data.meters || []) {
      parts.push(h("span", { className: meter.low ? "quota-meter quota-meter--low" : "quota-meter", text: meter.text }));
    }
    el.quota.replaceChildren(...parts);
    el.quota.hidden = parts.length === 0;
  }

  async function stopReply() {
    const stream = state.stream;
    if (!stream) return;
    el.stop.disabled = true;
    setStopLabel("Stopping…");
    try {
      await api("POST", messageApiUrl(stream.id, "stop"));
      // The stream now ends with `done` and status "cancelled".
    } catch (err) {
      if (state.stream === stream) {
        el.stop.disabled = false;
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
    if (button) button.disabled = true;
    try {
      const result = await api("POST", messageApiUrl(article.dataset.messageId, "regenerate"));
      const fresh = renderAssistantPlaceholder(result.assistant_message);
      article.replaceWith(fresh);
      // Hook for versions.js: the new reply is the latest version of its turn.
      fresh.dispatchEvent(new CustomEvent("chat:regenerated", { bubbles: true, detail: { previous: article } }));
      moveSidebarLinkToTop(state.conversationId);
      scrollToBottom(true);
      attachStream(fresh, result.stream_url || messageApiUrl(result.assistant_message.id, "stream"));
    } catch (err) {
      if (button) button.disabled = false;
      showComposerError(err.message);
      announce(err.message);
    } finally {
      state.sending = false;
      updateCounter();
    }
  }

  /** Retry after a lost connection: find out where the reply is, then resume or show it. */
  async function resume(article, button) {
    if (button) button.disabled = true;
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
      }
    } catch (err) {
      if (button) button.disabled = false;
      showComposerError(err.message);
    }
  }

  el.list.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button || !el.list.contains(button)) return;
    const article = button.closest(".message");
    if (!article) return;
    if (button.classList.contains("copy-reply-button") || button.classList.contains("codeblock-copy")) {
      copyText(textToCopy(button)).then((copied) => showCopied(button, copied));
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

  // ---------------------------------------------------------------------------------------------
  // Title, sidebar, rename, delete

  function setTitle(title) {
    const shown = title || UNTITLED;
    el.title.textContent = shown;
    document.title = `${shown} · ${APP_NAME}`;
  }

  function sidebarLink(id) {
    return el.sidebarList.querySelector(`.conversation-link[data-conversation-id="${CSS.escape(String(id))}"]`);
  }

  function upsertSidebarLink({ id, title, url }) {
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
    link.textContent = title || UNTITLED;
    markCurrent(id);
    return link;
  }

  function markCurrent(id) {
    el.sidebarList.querySelectorAll(".conversation-link").forEach((link) => {
      const current = link.dataset.conversationId === String(id);
      link.classList.toggle("is-current", current);
      if (current) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    });
  }

  function moveSidebarLinkToTop(id) {
    const link = sidebarLink(id);
    if (!link) return;
    const item = link.closest("li");
    if (item && item !== el.sidebarList.firstElementChild) el.sidebarList.prepend(item);
  }

  function applyConversation(conversation) {
    setTitle(conversation.title);
    const link = sidebarLink(conversation.id);
    if (link) link.textContent = conversation.title || UNTITLED;
    if (conversation.title_generated) state.titleGenerated = true;
  }

  async function refreshTitle() {
    const id = state.conversationId;
    if (!id) return;
    try {
      const conversation = await api("GET", conversationApiUrl(id));
      if (state.conversationId === String(conversation.id) && !isRenaming()) applyConversation(conversation);
    } catch (err) {
      // A missed title refresh is harmless: the next page load shows the title.
    }
  }

  /** The title is generated after the first exchange: look for it twice, then give up. */
  function scheduleTitleRefresh() {
    state.titleTimers.forEach((timer) => window.clearTimeout(timer));
    state.titleTimers = [1500, 4000].map((delay) =>
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

  el.renameButton.addEventListener("click", openRename);
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
    el.deleteButton.disabled = true;
    try {
      await api("DELETE", conversationApiUrl(state.conversationId));
      detachStream();
      window.location.assign(config.homeUrl);
    } catch (err) {
      el.deleteButton.disabled = false;
      showComposerError(err.message);
    }
  });

  // ---------------------------------------------------------------------------------------------
  // Start

  function start() {
    updateCounter();
    autoGrow();
    el.list.querySelectorAll(".message[data-role=assistant]").forEach(ensureToolbar);
    addCodeCopyButtons(el.list);
    scrollToBottom(true);

    // A reply still being written when the page was rendered: follow it.
    let article = null;
    const streamingId = app.dataset.streamingMessageId;
    if (streamingId) {
      article = el.list.querySelector(`.message[data-message-id="${CSS.escape(streamingId)}"]`);
    }
    if (!article) {
      article = Array.from(el.list.querySelectorAll('.message[data-role="assistant"]')).find((node) =>
        ACTIVE_STATUSES.includes(node.dataset.status)
      );
    }
    if (article) {
      attachStream(article, messageApiUrl(article.dataset.messageId, "stream"));
    } else if (window.matchMedia("(min-width: 48rem)").matches) {
      el.input.focus();
    }
  }

  start();
})();
