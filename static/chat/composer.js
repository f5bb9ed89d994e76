/*
 * The composer: the message box and its counter, Send/Stop while a reply streams, the quota line.
 * What sending and stopping do is in actions.js; initComposer() wires the keys and buttons to it.
 */
import { h } from "./dom.js";
import { api } from "./api.js";
import { config, el, state } from "./page.js";

export function updateCounter() {
  const length = el.input.value.length;
  el.counter.textContent = config.maxChars ? `${length} / ${config.maxChars}` : String(length);
  const over = config.maxChars > 0 && length > config.maxChars;
  el.counter.classList.toggle("is-over", over);
  el.input.setAttribute("aria-invalid", over ? "true" : "false");
  // Send stays enabled for an empty or long text: submitting explains instead of doing nothing.
  el.send.disabled = state.sending;
}

export function autoGrow() {
  if (window.CSS && CSS.supports && CSS.supports("field-sizing", "content")) return;
  el.input.style.height = "auto"; // CSSOM writes are allowed by the style-src CSP
  el.input.style.height = `${Math.min(el.input.scrollHeight + 2, window.innerHeight * 0.4)}px`;
}

const HINT = el.hint ? el.hint.textContent : "";
const STREAMING_HINT = "A reply is being written: Escape or Stop ends it · Enter sends once it is done";

export function setStopLabel(text) {
  if (el.stopLabel) el.stopLabel.textContent = text;
  else el.stop.textContent = text;
}

/**
 * While a reply streams Send becomes Stop, but the composer keeps the focus and stays editable:
 * the next question can be typed meanwhile, and Enter then sends nothing and stops nothing (the
 * text stays). Only Escape or a click on Stop stops the reply.
 */
export function setStreamingUi(streaming) {
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

export async function refreshQuota() {
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

/** Enter and Send send, Shift+Enter is a new line, Stop and Escape (while a reply streams) stop. */
export function initComposer({ send, stop }) {
  el.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });

  el.input.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.isComposing || event.keyCode === 229) return;
    if (event.shiftKey) return; // Shift+Enter: a new line
    event.preventDefault();
    send();
  });

  el.input.addEventListener("input", () => {
    updateCounter();
    autoGrow();
  });

  el.stop.addEventListener("click", () => stop());

  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.stream && !event.defaultPrevented && !el.renameForm.contains(event.target)) {
      stop();
    }
  });
}
