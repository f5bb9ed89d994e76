/*
 * A reply's code blocks, tables and displayed formulas scroll sideways inside their own box when
 * they are wider than it (markdown.css). A box that scrolls must be reachable from the keyboard
 * (WCAG 2.1.1; axe's scrollable-region-focusable): while it overflows it is a tab stop
 * (tabindex="0"), where the arrow keys scroll it; a code block or a formula is then a named group
 * ("python code", "Formula"), so the stop says what it is. A box that fits is no tab stop. A ResizeObserver follows each box, so a phone
 * turned sideways or a window made narrower updates it.
 */
const watched = new WeakSet();
const observer =
  "ResizeObserver" in window ? new ResizeObserver((entries) => entries.forEach((entry) => update(entry.target))) : null;

function update(box) {
  if (!box.isConnected) {
    if (observer) observer.unobserve(box);
    return;
  }
  const overflows = box.scrollWidth > box.clientWidth + 1;
  if (overflows && !box.hasAttribute("tabindex")) {
    box.tabIndex = 0;
    if (box.tagName === "PRE") {
      const lang = box.closest(".codeblock")?.querySelector(".codeblock-lang");
      box.setAttribute("role", "group");
      box.setAttribute("aria-label", lang && lang.textContent ? `${lang.textContent} code` : "Code");
    } else if (box.classList.contains("math-display")) {
      box.setAttribute("role", "group");
      box.setAttribute("aria-label", "Formula");
    }
  } else if (!overflows && box.hasAttribute("tabindex")) {
    box.removeAttribute("tabindex");
    box.removeAttribute("role");
    box.removeAttribute("aria-label");
  }
}

/** Follow every code block, table and displayed formula under `root` (once each). */
export function watchScrollers(root) {
  root.querySelectorAll(".markdown pre, .markdown table, .markdown .math-display").forEach((box) => {
    if (watched.has(box)) return;
    watched.add(box);
    if (observer) observer.observe(box); // it reports the box's first size at once
    else update(box);
  });
}
