/*
 * Light or dark theme, before the first paint.
 *
 * Loaded from <head> as a small blocking external script (the CSP forbids inline ones), so
 * <html data-theme> is set before the page is drawn: no flash of the wrong theme. The theme
 * follows the system's `prefers-color-scheme` until the user picks one with the toggle in the
 * top bar; that choice is remembered in localStorage.
 */
(function () {
  "use strict";

  var KEY = "chat-theme";
  var root = document.documentElement;
  var media = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

  function chosen() {
    try {
      var value = window.localStorage.getItem(KEY);
      return value === "dark" || value === "light" ? value : null;
    } catch (err) {
      return null; // storage disabled: follow the system
    }
  }

  function system() {
    return media && media.matches ? "dark" : "light";
  }

  function apply(theme) {
    root.setAttribute("data-theme", theme);
    var button = document.getElementById("theme-toggle");
    if (button) {
      var dark = theme === "dark";
      button.setAttribute("aria-pressed", dark ? "true" : "false");
      button.title = dark ? "Light theme" : "Dark theme";
      button.setAttribute("aria-label", "Dark theme");
    }
  }

  apply(chosen() || system());

  if (media && media.addEventListener) {
    media.addEventListener("change", function () {
      if (!chosen()) apply(system());
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("theme-toggle");
    if (!button) return;
    apply(root.getAttribute("data-theme") || system());
    button.addEventListener("click", function () {
      var next = root.getAttribute("data-theme") === "dark" ? "light" : "dark";
      try {
        window.localStorage.setItem(KEY, next);
      } catch (err) {
        // Not remembered, but still applied for this page.
      }
      apply(next);
    });
  });
})();
