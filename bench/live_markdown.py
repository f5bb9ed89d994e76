"""How long one live Markdown render of a streaming reply takes in Chromium (static/chat/render.js).

The page renders the whole reply so far at most once per animation frame (16.7 ms at 60 Hz); this
measures one such render (markdown-it, DOMPurify, replacing the changed blocks) as a reply grows
to each size, in Debian's Chromium through Playwright, serving static/ from a local HTTP server.
A benchmark, not a test: it prints a table and asserts nothing.

    .venv/bin/python bench/live_markdown.py [--sizes 2000,10000,30000] [--step 40]
"""

import argparse
import functools
import http.server
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, summary
from chat.tests.browser import CHROMIUM

# A reply like the models': paragraphs, a list with bold, a table, code.
BLOCK = (
    "Here is a **short**, practical overview with `inline code` and a [link](https://example.com).\n\n"
    "- **Automate it**: a script you can rerun beats a checklist.\n"
    "- **Check the inputs**: validate at the boundary.\n\n"
    "| Item | Price |\n|:--|--:|\n| Tea | 3 |\n| Cake | 12 |\n\n"
    "```python\ndef summarize(items):\n    return {'count': len(items)}\n```\n\n"
)

MEASURE = """async ([text, step]) => {
  const { renderLive } = await import('/chat/render.js');
  const body = document.createElement('div');
  body.className = 'message-body markdown';
  document.body.append(body);
  const render = [], withLayout = [];
  for (let end = step; end <= text.length; end += step) {
    const t0 = performance.now();
    renderLive(body, text.slice(0, end));
    const t1 = performance.now();
    body.getBoundingClientRect(); // the layout the change causes (the browser does it per frame)
    render.push(t1 - t0);
    withLayout.push(performance.now() - t0);
  }
  body.remove();
  return [render, withLayout];
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,10000,30000")
    parser.add_argument("--step", type=int, default=40, help="characters per delta")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format, *args):
            pass

    handler = functools.partial(Quiet, directory=str(REPO / "static"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(
                f"http://127.0.0.1:{server.server_address[1]}/chat/"
            )  # a directory listing: an HTML page of that origin
            print(
                f"{'reply size':>10} {'renders':>8} {'what':>14} {'p50 ms':>8} {'p90 ms':>8}"
                f" {'max ms':>8}"
            )
            page.evaluate(MEASURE, [BLOCK * 20, args.step])  # warm up (JIT), not reported
            for size in sizes:
                text = (BLOCK * (size // len(BLOCK) + 1))[:size]
                for what, times in zip(
                    ("render", "render+layout"),
                    page.evaluate(MEASURE, [text, args.step]),
                    strict=True,
                ):
                    last = times[-max(len(times) // 10, 1) :]  # the renders near the final size
                    stats = summary(last)
                    print(
                        f"{size:>10} {stats['n']:>8} {what:>14} {stats['p50']:>8.2f}"
                        f" {stats['p90']:>8.2f} {stats['max']:>8.2f}"
                    )
            browser.close()
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
