/*
 * Streaming a reply over Server-Sent Events: offsets, reconnects, waiting states, the end.
 *
 * While it streams, the text is rendered as Markdown in the browser (render.js: markdown-it, then
 * DOMPurify with the server's allow-list), at most once per animation frame; when it is done the
 * server's HTML (the same, plus highlighted code) takes its place, which is what a reload shows.
 */
import { addCodeCopyButtons } from "./copy.js";
import { keepingFocus } from "./dom.js";
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
 * Render a reply as it arrives: from `feed` (the events of the POST that started it, read from
 * its own response: api.js postForStream) or, without one, from an EventSource on `url`.
 *
 * Each delta's `id` is the character offset reached after it. EventSource sends the last one back
 * as Last-Event-ID when it reconnects by itself, and the server resumes from there; a brand-new
 * EventSource (page load, Retry after a lost connection) replays from offset 0, and one opened
 * when a post's feed was cut asks for the rest (`?offset=`). Placing each delta at (offset - its
 * length) makes every case, and any overlap, come out exactly right.
 */
export function attachStream(article, url, feed = null) {
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
    feed: null, // the post's own response, while it is read
    interruptions: 0, // stream_interrupted in a row without new text (see onServerError)
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

  if (feed) {
    stream.feed = feed;
    readFeed(stream, url, feed);
  } else {
    openSource(stream, url);
  }
}

/** The post's own events; when they stop short of the end, an EventSource takes over. */
async function readFeed(stream, url, feed) {
  try {
    for await (const event of feed.events) {
      if (state.stream !== stream) return;
      if (event.event === "delta") {
        onDelta(stream, event.data, event.id);
      } else if (event.event === "done") {
        onDoneEvent(stream, event.data);
        return;
      } else if (event.event === "error") {
        if (!onServerError(stream, event.data)) return; // the end, shown
        break; // stream_interrupted: resume below
      }
    }
  } catch (err) {
    // The connection was cut (or aborted: then this stream is no longer the page's).
  }
  if (state.stream !== stream) return;
  stream.feed = null;
  setNotice(stream.article, "Connection lost. Reconnecting…");
  const separator = url.includes("?") ? "&" : "?";
  openSource(stream, `${url}${separator}offset=${stream.length}`);
}

function openSource(stream, url) {
  const { article } = stream;
  const source = new EventSource(url);
  stream.source = source;

  source.addEventListener("open", () => {
    if (state.stream === stream) setNotice(article, "");
  });

  source.addEventListener("delta", (event) => {
    if (state.stream !== stream) return;
    onDelta(stream, event.data, event.lastEventId);
  });

  source.addEventListener("done", (event) => {
    if (state.stream !== stream) return;
    onDoneEvent(stream, event.data);
  });

  // One listener gets both the server's `event: error` (a MessageEvent with data) and the
  // EventSource's own network errors (a plain Event).
  source.addEventListener("error", (event) => {
    if (state.stream !== stream) return;
    if (typeof event.data === "string") {
      // stream_interrupted: the event has no id, so EventSource reconnects with the offset of
      // the last delta and the server resumes from there.
      onServerError(stream, event.data);
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

function parsed(raw) {
  try {
    return JSON.parse(raw) || {};
  } catch (err) {
    return null;
  }
}

function onDelta(stream, raw, lastEventId) {
  const { article } = stream;
  const data = parsed(raw);
  if (data === null) return;
  const text = typeof data.text === "string" ? data.text : "";
  const size = Array.from(text).length;
  const end = parseInt(lastEventId, 10);
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
}

function onDoneEvent(stream, raw) {
  finishStream(stream);
  onDone(stream, parsed(raw) || {});
}

/**
 * The server's `event: error`. Return true when the stream should go on: the server lost its
 * feed of the reply (not the reply itself), `stream_interrupted`, and a reconnect resumes it;
 * a few in a row without new text, or any other error, end it here (false).
 */
function onServerError(stream, raw) {
  const { article } = stream;
  const data = parsed(raw) || {};
  if (data.code === "stream_interrupted" && stream.interruptions < MAX_STREAM_INTERRUPTIONS) {
    stream.interruptions += 1;
    setNotice(article, "Connection interrupted. Reconnecting…");
    return true;
  }
  finishStream(stream);
  if (data.code === "stream_interrupted") {
    article.dataset.status = "interrupted";
    showMessageError(article, "The connection to the server was lost before the reply finished.", "resume");
    announce("The connection was lost before the reply finished.");
    return false;
  }
  onStreamError(stream, data);
  return false;
}

function scheduleRender(stream) {
  if (stream.frame) return;
  stream.frame = window.requestAnimationFrame(() => {
    stream.frame = 0;
    renderStreamText(stream);
  });
}

function renderStreamText(stream) {
  keepingFocus(stream.body, () => {
    if (renderLive(stream.body, stream.text)) {
      addCodeCopyButtons(stream.body);
      watchScrollers(stream.body);
    }
  });
  scrollToBottom(false);
}

/** Close the EventSource (or the post's response), flush pending text, give the composer back. */
function finishStream(stream) {
  closeConnections(stream);
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

function closeConnections(stream) {
  if (stream.source) stream.source.close();
  if (stream.feed) {
    stream.feed.abort();
    stream.feed = null;
  }
}

export function detachStream() {
  const stream = state.stream;
  if (!stream) return;
  closeConnections(stream);
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
    keepingFocus(body, () => {
      body.innerHTML = data.html; // sanitised by the server; the live render's structure, highlighted
      addCodeCopyButtons(body);
    });
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
