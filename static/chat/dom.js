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
