/* Small DOM helpers shared by the chat page's modules. */

/** Create an element: h("button", {className: "x", type: "button"}, "text", child). */
export function h(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "className") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A copy of the first element of a server-rendered <template id=...> (null if absent). */
export function fromTemplate(id) {
  const template = document.getElementById(id);
  const first = template && template.content.firstElementChild;
  return first ? first.cloneNode(true) : null;
}

/** A copy of one inline SVG icon from <template id="icon-template"> (rendered by _icon.html). */
export function icon(name) {
  const template = document.getElementById("icon-template");
  const svg = template && template.content.querySelector(`[data-icon="${name}"]`);
  return svg ? svg.cloneNode(true) : document.createTextNode("");
}

// Chromium moves the focus from a control to the page when the control is disabled.
const focusedWhenDisabled = new WeakSet();

/** Disable controls for the time of a request, remembering which of them had the focus. */
export function disable(...controls) {
  for (const control of controls) {
    if (control === document.activeElement) focusedWhenDisabled.add(control);
    else focusedWhenDisabled.delete(control);
    control.disabled = true;
  }
}

/** Whether the focus fell to the page (its control was removed, hidden or disabled). */
export function focusIsLost() {
  const active = document.activeElement;
  return !active || active === document.body;
}

/** Enable them again; the one that had the focus gets it back, unless it went elsewhere since. */
export function enable(...controls) {
  const lost = focusIsLost();
  for (const control of controls) {
    control.disabled = false;
    if (focusedWhenDisabled.delete(control) && lost && control.isConnected) control.focus({ preventScroll: true });
  }
}

/** The focus fell to the page (its control was removed or hidden): give it to `target`. */
export function focusIfLost(target) {
  if (target && focusIsLost()) target.focus({ preventScroll: true });
}

// What a rebuilt reply's focused control is matched by: a code block's copy button, or a link.
const KEPT_FOCUS = [".codeblock-copy", "a[href]"];

/**
 * Run `change`, which rebuilds (part of) `container`, e.g. a reply's body as it streams or once
 * it is done; if a control inside it had the focus, its like in the new content (the same kind,
 * the same place among them) gets it, so that the keyboard is not dropped to the page.
 */
export function keepingFocus(container, change) {
  const active = document.activeElement;
  const kind = active && container.contains(active) ? KEPT_FOCUS.find((k) => active.matches(k)) : null;
  if (!kind) return change();
  const index = [...container.querySelectorAll(kind)].indexOf(active);
  const result = change();
  if (!active.isConnected) container.querySelectorAll(kind)[index]?.focus({ preventScroll: true });
  return result;
}
