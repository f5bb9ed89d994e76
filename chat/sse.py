"""Server-Sent Events framing. Pure, no Django."""

import json


def sse_event(event: str, data: dict, *, event_id: int | None = None) -> bytes:
    """Frame one event. JSON never contains a raw newline, so ``data`` is one line."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"{head}event: {event}\ndata: {payload}\n\n".encode()


def sse_comment(text: str) -> bytes:
    return f": {text}\n\n".encode()


def sse_retry(milliseconds: int) -> bytes:
    return f"retry: {milliseconds}\n\n".encode()


_text_json = json.JSONEncoder(ensure_ascii=False).encode


def sse_delta(text: str, event_id: int) -> bytes:
    """``sse_event("delta", {"text": text}, event_id=event_id)``, framed without building a dict
    or a format string: it is sent once per token to every reader (the same bytes, tested)."""
    return b'id: %d\nevent: delta\ndata: {"text":%s}\n\n' % (event_id, _text_json(text).encode())
