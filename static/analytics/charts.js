/*
 * The dashboard's charts, made interactive on top of the server's SVG (analytics/charts.py).
 *
 * Without this module the charts already work: each day's band has a title with its values
 * and is a link to that day's report. With it:
 *   - hovering (or focusing, or a first tap on a touch screen) a day shows its values in a
 *     read-out box, written by the server with their units ($, ms, calls, tokens);
 *   - clicking a legend entry hides or shows its series (stacked bars are restacked);
 *   - a second tap on the same day (touch) or a click opens the day's report;
 *   - the scale link (clipped / every day to scale) redraws the charts in place.
 * No inline script or style: the read-out is placed through the CSSOM, which the CSP allows.
 */

function number(element, name) {
  return Number.parseFloat(element.getAttribute(name));
}

/** Take the <title> text out of an element (so the browser's own tooltip does not double ours). */
function takeTitle(element) {
  const title = Array.from(element.children).find((child) => child.localName === "title");
  if (!title) return "";
  const text = title.textContent;
  title.remove();
  return text;
}

class InteractiveChart {
  constructor(figure) {
    this.figure = figure;
    this.svg = figure.querySelector("svg.chart");
    this.hidden = new Set();
    this.active = null;
    this.lastPointer = "mouse";
    this.plotTop = number(this.svg, "data-plot-top");
    this.plotBottom = number(this.svg, "data-plot-bottom");
    this.topValue = number(this.svg, "data-top-value");
    this.summaries = new Map();
    for (const band of this.svg.querySelectorAll(".chart-band")) {
      const lines = takeTitle(band).split("\n");
      this.summaries.set(band.dataset.index, lines);
    }
    // The bands' read-out replaces the titles of the bars and dots drawn over them.
    for (const mark of this.svg.querySelectorAll(".chart-bar, .chart-dot")) takeTitle(mark);
    this.tip = document.createElement("div");
    this.tip.className = "chart-tip";
    this.tip.hidden = true;
    this.tip.setAttribute("role", "status");
    figure.append(this.tip);
    this.listen();
    this.setUpLegend();
  }

  listen() {
    const svg = this.svg;
    svg.addEventListener("pointerover", (event) => {
      this.lastPointer = event.pointerType || "mouse";
      const day = event.target.closest("[data-index]");
      if (day && event.pointerType !== "touch") this.show(day.dataset.index, event);
    });
    svg.addEventListener("pointermove", (event) => {
      if (this.active !== null && event.pointerType !== "touch") this.place(event);
    });
    svg.addEventListener("pointerleave", (event) => {
      if (event.pointerType !== "touch") this.hide(); // a lifted finger leaves too
    });
    svg.addEventListener("pointerdown", (event) => {
      this.lastPointer = event.pointerType || "mouse";
    });
    svg.addEventListener(
      "touchstart",
      () => {
        this.lastPointer = "touch";
      },
      { passive: true },
    );
    svg.addEventListener("focusin", (event) => {
      const day = event.target.closest("a.chart-day");
      // Keyboard focus only: a tap focuses the link too, and must not count as the first tap.
      if (day && day.matches(":focus-visible")) this.show(day.dataset.index, null);
    });
    svg.addEventListener("focusout", () => this.hide());
    svg.addEventListener("click", (event) => {
      if (event.pointerType) this.lastPointer = event.pointerType;
      const day = event.target.closest("a.chart-day");
      // On a touch screen the first tap shows the day's values, a second one opens its report.
      if (day && this.lastPointer === "touch" && this.active !== day.dataset.index) {
        event.preventDefault();
        this.show(day.dataset.index, event);
      }
    });
  }

  show(index, event) {
    const lines = this.summaries.get(index);
    if (!lines) return;
    this.setActive(index);
    this.tip.replaceChildren();
    lines.forEach((text, position) => {
      const line = document.createElement("div");
      line.textContent = text;
      if (position === 0) line.className = "chart-tip-head";
      // Line n (from 1) is series n - 1, in the legend's order.
      else if (this.hidden.has(String(position - 1))) line.className = "is-off";
      this.tip.append(line);
    });
    if (this.svg.querySelector("a.chart-day")) {
      const hint = document.createElement("div");
      hint.className = "chart-tip-hint";
      hint.textContent =
        this.lastPointer === "touch" ? "Tap again for the day's report" : "Click for the day's report";
      this.tip.append(hint);
    }
    this.tip.hidden = false;
    this.place(event);
  }

  setActive(index) {
    this.active = index;
    for (const band of this.svg.querySelectorAll(".chart-band")) {
      band.classList.toggle("is-active", band.dataset.index === index);
    }
  }

  hide() {
    this.tip.hidden = true;
    this.setActive(null);
  }

  /** Put the read-out next to the pointer, or above the day's band, inside the figure. */
  place(event) {
    const box = this.figure.getBoundingClientRect();
    let x;
    let y;
    if (event && event.clientX !== undefined && (event.clientX || event.clientY)) {
      x = event.clientX - box.left + 14;
      y = event.clientY - box.top + 14;
    } else {
      const band = this.svg.querySelector(`.chart-band[data-index="${this.active}"]`);
      const rect = band.getBoundingClientRect();
      x = rect.right - box.left + 6;
      y = rect.top - box.top + 8;
    }
    const width = this.tip.offsetWidth;
    if (x + width > box.width - 4) x = Math.max(4, x - width - 28);
    this.tip.style.left = `${Math.round(x)}px`;
    this.tip.style.top = `${Math.round(y)}px`;
  }

  setUpLegend() {
    for (const item of this.svg.querySelectorAll(".chart-legend-item")) {
      const series = item.dataset.series;
      const name = item.textContent.trim();
      item.setAttribute("role", "button");
      item.setAttribute("tabindex", "0");
      item.setAttribute("aria-pressed", "true");
      item.setAttribute("aria-label", `Show ${name}`);
      const toggle = (event) => {
        event.preventDefault();
        this.toggle(series);
        const shown = !this.hidden.has(series);
        item.setAttribute("aria-pressed", String(shown));
      };
      item.addEventListener("click", toggle);
      item.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") toggle(event);
      });
    }
  }

  toggle(series) {
    if (this.hidden.has(series)) this.hidden.delete(series);
    else this.hidden.add(series);
    for (const mark of this.svg.querySelectorAll(`[data-series="${series}"]:not(.chart-legend-item)`)) {
      mark.classList.toggle("is-hidden", this.hidden.has(series));
    }
    this.restack();
  }

  /** Stack the shown bars of each day on the baseline again, on the same scale. */
  restack() {
    const bars = Array.from(this.svg.querySelectorAll(".chart-bar"));
    if (!bars.length) {
      this.remarkClippedPoints();
      return;
    }
    if (!Number.isFinite(this.topValue)) return;
    const height = this.plotBottom - this.plotTop;
    const y = (value) => this.plotBottom - (Math.min(value, this.topValue) / this.topValue) * height;
    const bases = new Map();
    bars.sort((a, b) => Number(a.dataset.series) - Number(b.dataset.series));
    for (const bar of bars) {
      if (this.hidden.has(bar.dataset.series)) continue;
      const base = bases.get(bar.dataset.index) || 0;
      const value = Number.parseFloat(bar.dataset.value);
      bar.setAttribute("y", y(base + value).toFixed(2));
      bar.setAttribute("height", (y(base) - y(base + value)).toFixed(2));
      bases.set(bar.dataset.index, base + value);
    }
    // A day is marked off the scale only while its shown stack is; the written value is the
    // whole day's, so it shows only while every series does.
    for (const mark of this.svg.querySelectorAll(".chart-break, .chart-clip-label")) {
      const off = (bases.get(mark.dataset.index) || 0) > this.topValue;
      const stale = mark.classList.contains("chart-clip-label") && this.hidden.size > 0;
      mark.classList.toggle("is-hidden", !off || stale);
    }
  }

  /** On a line chart, a day stays marked off the scale while one of its clipped points shows. */
  remarkClippedPoints() {
    for (const mark of this.svg.querySelectorAll(".chart-break, .chart-clip-label")) {
      const selector = `.chart-dot.chart-clipped[data-index="${mark.dataset.index}"]`;
      const dots = Array.from(this.svg.querySelectorAll(selector));
      const off = dots.some((dot) => !dot.classList.contains("is-hidden"));
      const stale = mark.classList.contains("chart-clip-label") && this.hidden.size > 0;
      mark.classList.toggle("is-hidden", !off || stale);
    }
  }
}

function enhanceCharts(root) {
  for (const figure of root.querySelectorAll("figure.analytics-chart")) {
    if (figure.querySelector("svg.chart[data-top-value]")) new InteractiveChart(figure);
  }
}

function adopt(target, source) {
  target.replaceChildren(...Array.from(source.childNodes, (node) => document.importNode(node, true)));
}

/**
 * The scale link (days far above the rest clipped, or every day to scale) swaps the charts in
 * place: its target is the same page drawn by the server on the other scale (which also remembers
 * the choice), so without this module the link simply opens it. On any failure, it does.
 */
function setUpScaleToggle() {
  const help = document.querySelector(".analytics-chart-help");
  const charts = document.querySelector(".analytics-charts");
  if (!help || !charts) return;
  help.addEventListener("click", async (event) => {
    const link = event.target.closest("a[data-scale]");
    if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    charts.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(link.href, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const newHelp = page.querySelector(".analytics-chart-help");
      const newCharts = page.querySelector(".analytics-charts");
      if (!newHelp || !newCharts) throw new Error("the answer has no charts");
      adopt(help, newHelp);
      adopt(charts, newCharts);
      charts.dataset.scale = newCharts.dataset.scale;
      enhanceCharts(charts);
      window.history.replaceState(null, "", link.href);
      help.querySelector("a[data-scale]")?.focus({ preventScroll: true });
    } catch {
      window.location.assign(link.href);
    } finally {
      charts.removeAttribute("aria-busy");
    }
  });
}

enhanceCharts(document);
setUpScaleToggle();

export { InteractiveChart };
