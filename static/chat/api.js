/* The JSON API: one fetch wrapper that turns every failure into an ApiError with a message. */
import { config } from "./page.js";
import { readEvents } from "./sse.js";

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.getAttribute("content") : "";
}

export function conversationApiUrl(id) {
  return `${config.conversationsApi}/${encodeURIComponent(id)}`;
}

export function messageApiUrl(id, action) {
  const base = `${config.messagesApi}/${encodeURIComponent(id)}`;
  return action ? `${base}/${action}` : base;
}

export class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

function jsonHeaders(method, body, accept) {
  const headers = { Accept: accept };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRFToken"] = csrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  return headers;
}

async function send(method, url, body, accept, signal) {
  const init = { method, headers: jsonHeaders(method, body, accept), credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) init.body = JSON.stringify(body);
  if (signal) init.signal = signal;
  try {
    return await fetch(url, init);
  } catch (err) {
    throw new ApiError(
      "network_error",
      "Could not reach the server. Check your connection and try again.",
      0
    );
  }
}

/** Call the JSON API. Resolve to the parsed body (null for 204); reject with an ApiError. */
export async function api(method, url, body) {
  return jsonResult(await send(method, url, body, "application/json"));
}

/**
 * POST a message (or a regenerate) asking for its reply's events in the same response: one
 * request, read where the reply is generated. Resolve to { result, feed }: `result` is what a
 * 202 carries (the server's `accepted` event), `feed` the reply's events ({ events, abort }),
 * or null when the server answered 202 JSON instead (too many streams open: then the reply's
 * stream_url is opened as usual). Reject with an ApiError as api() does.
 */
export async function postForStream(url, body) {
  const controller = new AbortController();
  const response = await send("POST", url, body, "text/event-stream, application/json", controller.signal);
  if (!(response.headers.get("Content-Type") || "").includes("text/event-stream")) {
    return { result: await jsonResult(response), feed: null };
  }
  const events = readEvents(response.body);
  let first;
  try {
    first = await events.next();
  } catch (err) {
    first = { done: true };
  }
  if (first.done || first.value.event !== "accepted") {
    controller.abort();
    throw new ApiError(
      "unexpected_response",
      "The connection was lost before the server confirmed your message: reload the page to see whether it was sent.",
      response.status
    );
  }
  return { result: JSON.parse(first.value.data), feed: { events, abort: () => controller.abort() } };
}

async function jsonResult(response) {
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
