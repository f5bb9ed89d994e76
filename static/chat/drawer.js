/*
 * On narrow screens (<= 48rem, 768 px) the conversation list is a drawer behind the menu button
 * in the conversation header. The button says whether it is open (aria-expanded, aria-controls);
 * opening moves the focus into the list and makes the rest of the page inert (the top bar and the
 * chat: no tabbing, clicking or reading behind the backdrop); Escape, the close button or a click on the backdrop close it and
 * give the focus back to the menu button. Without this script the list stays above the chat.
 */
import { focusIsLost } from "./dom.js";
import { app } from "./page.js";

const NARROW = window.matchMedia("(max-width: 48rem)");

export function initDrawer() {
  const sidebar = document.getElementById("sidebar");
  const toggle = document.getElementById("sidebar-toggle");
  const close = document.getElementById("sidebar-close");
  const backdrop = document.getElementById("drawer-backdrop");
  if (!sidebar || !toggle || !close || !backdrop) return;
  app.classList.add("has-drawer");

  const isOpen = () => app.classList.contains("is-drawer-open");
  let madeInert = [];

  /** Everything on the page but the drawer and its backdrop (the siblings of its ancestors). */
  function behindTheDrawer() {
    const nodes = [];
    for (let node = sidebar; node.parentElement && node !== document.body; node = node.parentElement) {
      for (const sibling of node.parentElement.children) {
        if (sibling !== node && sibling !== backdrop && !sibling.inert && sibling.tagName !== "SCRIPT") {
          nodes.push(sibling);
        }
      }
    }
    return nodes;
  }

  function open() {
    app.classList.add("is-drawer-open");
    toggle.setAttribute("aria-expanded", "true");
    backdrop.hidden = false;
    madeInert = behindTheDrawer();
    madeInert.forEach((node) => {
      node.inert = true;
    });
    const current = sidebar.querySelector(".conversation-link.is-current");
    (current || document.getElementById("new-conversation")).focus();
  }

  function shut(returnFocus) {
    if (!isOpen()) return;
    app.classList.remove("is-drawer-open");
    toggle.setAttribute("aria-expanded", "false");
    backdrop.hidden = true;
    madeInert.forEach((node) => {
      node.inert = false;
    });
    madeInert = [];
    if (returnFocus) toggle.focus();
  }

  toggle.addEventListener("click", () => (isOpen() ? shut(true) : open()));
  close.addEventListener("click", () => shut(true));
  backdrop.addEventListener("click", () => shut(true));
  // Capture: before the page's own Escape (which stops a streaming reply), so that Escape only
  // closes the drawer.
  document.addEventListener(
    "keydown",
    (event) => {
      if (event.key !== "Escape" || !isOpen()) return;
      event.preventDefault();
      shut(true);
    },
    true
  );
  // Whether the focus was last in the list: when the list is hidden, Chromium may have dropped
  // the focus to the page before the media query's change event comes.
  let focusWasInList = false;
  document.addEventListener("focusin", (event) => {
    focusWasInList = sidebar.contains(event.target);
  });
  NARROW.addEventListener("change", () => {
    if (!NARROW.matches) {
      shut(false); // wide again: the list is a column, nothing to close
      return;
    }
    // Narrow now (a smaller window, a 200 % zoom): the list is a closed drawer, hidden, so the
    // focus in it goes to the menu button that opens it rather than to the page.
    const inList = sidebar.contains(document.activeElement) || (focusIsLost() && focusWasInList);
    if (!isOpen() && inList) toggle.focus({ preventScroll: true });
  });
}
