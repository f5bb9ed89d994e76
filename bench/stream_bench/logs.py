"""What the served app logged during a streaming bench: the tail of its log, and its warnings
and errors counted."""

from __future__ import annotations

import json
import re
from pathlib import Path


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def log_problems(path: Path) -> dict[str, int]:
    """Warnings and errors the app logged (JSON lines), counted by logger, message, exception."""
    counts: dict[str, int] = {}
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return counts
    for line in text.splitlines():
        if not line.startswith("{"):
            continue  # daphne's access log
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("level") not in ("WARNING", "ERROR", "CRITICAL"):
            continue
        message = re.sub(r"\d+", "N", str(record.get("message", "")))
        exc = (record.get("exc_info") or "").strip().splitlines()
        key = f"{record.get('level')} {record.get('logger')}: {message}"
        if exc:
            key += f" [{exc[-1][:160]}]"
        counts[key] = counts.get(key, 0) + 1
    return counts
