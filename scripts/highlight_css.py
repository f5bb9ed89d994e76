"""Write static/chat/highlight.css from the Pygments styles named in chat/highlighting.py.

Run from the repository root: ``python scripts/highlight_css.py``. A test checks the committed
file is what this writes.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chat.highlighting import stylesheet  # noqa: E402

if __name__ == "__main__":
    target = ROOT / "static" / "chat" / "highlight.css"
    target.write_text(stylesheet(), encoding="utf-8")
    print(f"wrote {target.relative_to(ROOT)}")
