"""Helpers of the accessibility tests (chat/tests/test_browser_a11y.py): axe-core in the page,
and what the keyboard's focus is on (its accessible name as Chromium computes it, and whether a
focus indicator shows).

axe-core is a test-only asset (chat/tests/vendor/, see its README): never served by the app.
It goes into the page through the DevTools protocol (Runtime.evaluate), which the page's
Content-Security-Policy does not govern; a `<script>` tag with its text (Playwright's
`add_script_tag(path=...)`) would be an inline script, which `script-src 'self'` refuses. The
page keeps its real CSP while it is checked.
"""

import os
from pathlib import Path

AXE_VERSION = "4.14.1"
AXE_JS = Path(__file__).resolve().parent / "vendor" / f"axe-core-{AXE_VERSION}" / "axe.min.js"
# What fails a test. "moderate" and "minor" findings do not (there are none today: docs/ui.md);
# A11Y_REPORT_ALL=1 with `pytest -s` prints them.
BLOCKING = ("serious", "critical")

RUN_AXE = """async () => {
  const results = await window.axe.run(document, { resultTypes: ['violations'] });
  return results.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    nodes: v.nodes.map((n) => ({ target: n.target.join(' '), summary: n.failureSummary })),
  }));
}"""


def cdp(page):
    """The page's DevTools session (one per page, kept on it)."""
    session = getattr(page, "_a11y_cdp", None)
    if session is None:
        session = page.context.new_cdp_session(page)
        page._a11y_cdp = session
    return session


def axe_violations(page) -> list[dict]:
    """Every axe-core violation on the page as it is now (axe is loaded into it if need be)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        result = cdp(page).send(
            "Runtime.evaluate", {"expression": AXE_JS.read_text(), "returnByValue": True}
        )
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        assert page.evaluate("() => window.axe.version") == AXE_VERSION
    return page.evaluate(RUN_AXE)


def blocking(violations: list[dict]) -> list[dict]:
    return [v for v in violations if v["impact"] in BLOCKING]


def describe(state: str, violations: list[dict]) -> str:
    """One line per violation: the state, rule id, impact, what it asks, the nodes it found."""
    lines = []
    for v in violations:
        targets = "; ".join(n["target"] for n in v["nodes"][:8])
        more = f" (+{len(v['nodes']) - 8} more)" if len(v["nodes"]) > 8 else ""
        lines.append(f"[{state}] {v['id']} ({v['impact']}): {v['help']} -> {targets}{more}")
        lines.extend(f"    {n['target']}: {n['summary']}" for n in v["nodes"][:3])
    return "\n".join(lines)


def check_axe(page, state: str, failures: list[str]) -> list[dict]:
    """Run axe; add the serious and critical violations to `failures`; return all of them."""
    violations = axe_violations(page)
    if os.environ.get("A11Y_REPORT_ALL"):  # with pytest -s: the moderate and minor ones too
        print(describe(state, [v for v in violations if v["impact"] not in BLOCKING]))
    serious = blocking(violations)
    if serious:
        failures.append(describe(state, serious))
    return violations


# ------------------------------------------------------------------------------------------------
# The keyboard's focus

# The look of an element's focus indicator: its outline and box-shadow.
LOOK = """(e) => { const s = getComputedStyle(e);
  return (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0 ? s.outline : '') + '|' +
    (s.boxShadow === 'none' ? '' : s.boxShadow); }"""

# Remember how every element looks with nothing focused, so that only an indicator the focus
# brings counts (the current conversation, say, always has an inset shadow). The focus is put
# back where it was.
REMEMBER_UNFOCUSED = f"""() => {{
  const look = {LOOK};
  const active = document.activeElement;
  if (active) active.blur();
  const seen = new WeakMap();
  for (const e of document.querySelectorAll('body *')) seen.set(e, look(e));
  window.__unfocusedLook = seen;
  if (active) active.focus();
}}"""

# The focused element: what it is, whether it is visible, and where its focus indicator is (its
# own outline or box-shadow, or that of a box around it within three levels, e.g. the composer's
# frame around the message box), counting only what differs from the unfocused look.
FOCUSED = f"""() => {{
  const look = {LOOK};
  const a = document.activeElement;
  if (!a || a === document.body || a === document.documentElement) return null;
  const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
    [...e.classList].map((c) => '.' + c).join('');
  const unfocused = window.__unfocusedLook || new WeakMap();
  let indicator = null;
  for (let e = a, level = 0; e && e !== document.body && level <= 3; e = e.parentElement, level++) {{
    const now = look(e);
    if (now !== '|' && now !== (unfocused.get(e) || '|')) {{ indicator = name(e) + ' ' + now; break; }}
  }}
  let opacity = 1;
  for (let e = a; e; e = e.parentElement) opacity *= parseFloat(getComputedStyle(e).opacity);
  const r = a.getBoundingClientRect();
  return {{
    element: name(a),
    indicator,
    opacity,
    visible: a.checkVisibility({{ visibilityProperty: true }}) && r.width > 0 && r.height > 0,
  }};
}}"""

# Wait while a control revealed by the focus (a sidebar entry's Pin, a message's Edit) fades in.
FOCUSED_IS_OPAQUE = """() => { const a = document.activeElement; let o = 1;
  for (let e = a; e; e = e.parentElement) o *= parseFloat(getComputedStyle(e).opacity);
  return o > 0.9; }"""


def remember_unfocused_look(page) -> None:
    page.evaluate(REMEMBER_UNFOCUSED)


def accessible(page) -> dict:
    """The focused element's role and accessible name, as Chromium's accessibility tree has them.

    A node left out of that tree (aria-hidden, say, or the page's body when the focus was lost)
    comes back with role "none" and no name; the reasons Chromium gives are added to its role.
    """
    session = cdp(page)
    handle = session.send("Runtime.evaluate", {"expression": "document.activeElement"})
    node = session.send(
        "Accessibility.getPartialAXTree",
        {"objectId": handle["result"]["objectId"], "fetchRelatives": False},
    )["nodes"][0]
    role = node.get("role", {}).get("value", "")
    if node.get("ignored"):
        reasons = ", ".join(r.get("name", "?") for r in node.get("ignoredReasons", []))
        role = f"{role}, ignored: {reasons or 'no reason given'}"
    return {"role": role, "name": (node.get("name", {}).get("value") or "").strip()}


def focused(page) -> dict | None:
    """The focused element once it is fully shown, with its role, name and focus indicator."""
    info = page.evaluate(FOCUSED)
    if info is None:
        return None
    if info["opacity"] <= 0.9:
        page.wait_for_function(FOCUSED_IS_OPAQUE, timeout=5_000)
        info = page.evaluate(FOCUSED)
    return {**info, **accessible(page)}


def focus_problems(stop: dict) -> list[str]:
    """What is wrong with one stop of the tab order (nothing, ideally)."""
    problems = []
    if not stop["visible"]:
        problems.append("not visible")
    if not stop["indicator"]:
        problems.append("no focus indicator")
    if not stop["name"]:
        problems.append("no accessible name")
    return [f"{stop['element']} ({stop['role']} {stop['name']!r}): {p}" for p in problems]
