/* The JSON API: one fetch wrapper that turns every failure into an ApiError with a message. */
import { config } from "./page.js";

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

/** Call the JSON API. Resolve to the parsed body (null for 204); reject with an ApiError. */
export async function api(method, url, body) {
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
