/*
 * Streaming a reply over Server-Sent Events: offsets, reconnects, waiting states, the end.
 *
 * While it streams, the text is rendered as Markdown in the browser (render.js: markdown-it, then
 * DOMPurify with the server's allow-list), at most once per animation frame; when it is done the
 * server's HTML (the same, plus highlighted code) takes its place, which is what a reload shows.
 */
import { addCodeCopyButtons } from "./copy.js";
import { watchScrollers } from "./scrollers.js";
import { FINISHED, setStats, setStoppedBadge, tokensPerSecond } from "./footer.js";
import { waitingIndicator } from "./waiting.js";
import { refreshQuota, setStreamingUi } from "./composer.js";
import { scheduleTitleRefresh } from "./conversation.js";
import { clearMessageError, setNotice, showMessageError } from "./errors.js";
import { scrollToBottom, updateRegenerateButtons } from "./messages.js";
import { MAX_STREAM_INTERRUPTIONS, announce, state } from "./page.js";
import { typesetMath } from "./math.js";
import { forgetLive, renderLive, sourceOf } from "./render.js";

/**
 * Open an EventSource on a reply and render it as it arrives.
 *
 * Each delta's `id` is the character offset reached after it. EventSource sends the last one back
 * as Last-Event-ID when it reconnects by itself, and the server resumes from there; a brand-new
 * EventSource (page load, Retry after a lost connection) replays from offset 0. Placing each delta
 * at (offset - its length) makes both cases, and any overlap, come out exactly right.
 */
export function attachStream(article, url) {
  if (state.stream) detachStream();
  const body = article.querySelector(".message-body");
  // The Markdown so far: plain text from the server on a reload, else what was rendered live.
  const initial = sourceOf(body);
  const stream = {
    id: article.dataset.messageId,
    article,
    body,
    text: initial,
    // Offsets count Unicode code points (as the server does), not UTF-16 units.
    length: Array.from(initial).length,
    frame: 0,
    source: null,
    interruptions: 0, // stream_interrupted in a row without new text (see the error listener)
    waiting: null, // "Thinking…" / "Still waiting for the model…" (waiting.js)
  };
  state.stream = stream;
  body.classList.add("is-streaming", "markdown");
  body.classList.remove("is-plain");
  if (initial) renderStreamText(stream);
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
  if (renderLive(stream.body, stream.text)) {
    addCodeCopyButtons(stream.body);
    watchScrollers(stream.body);
  }
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
  stream.body.classList.remove("is-streaming");
  stream.waiting.end();
  stream.body.removeAttribute("aria-busy");
  setNotice(stream.article, "");
  if (state.stream === stream) state.stream = null;
  setStreamingUi(false);
}

export function detachStream() {
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
  forgetLive(body);
  if (data.html) {
    body.innerHTML = data.html; // sanitised by the server; the live render's structure, highlighted
    addCodeCopyButtons(body);
    typesetMath(body);
    watchScrollers(body);
  } else {
    body.classList.remove("markdown");
    body.classList.add("is-plain");
    body.textContent = stream.text;
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
  // Any partial text stays, rendered (as the server stores and a reload shows it).
  if (!stream.text) {
    body.classList.remove("markdown");
    body.classList.add("is-plain");
  }
  const message = data.message || "The reply could not be completed.";
  // A reached quota names its reset time; a Retry button would only fail again until then.
  showMessageError(article, message, data.code === "quota_exceeded" ? false : "regenerate");
  announce(message);
  updateRegenerateButtons();
  scrollToBottom(false);
  refreshQuota();
}
