"""The one SSE client of the tests and the benchmarks: a parser of ``text/event-stream`` and
readers of httpx responses. The app's replies carry JSON in ``data:``; the simulator's OpenAI
chunks end with ``data: [DONE]``, so a decoder can also keep the data as text."""

import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class SSEEvent:
    event: str
    data: Any  # the JSON value of the data lines (their text with ``json_data=False``)
    id: str | None
    received_at: float = field(default_factory=time.monotonic)


@dataclass
class SSEResult:
    status: int
    headers: dict
    events: list[SSEEvent]
    comments: list[str]

    @property
    def text(self) -> str:
        return "".join(e.data["text"] for e in self.events if e.event == "delta")

    @property
    def final(self) -> SSEEvent | None:
        return next((e for e in self.events if e.event in ("done", "error")), None)

    def offsets_contiguous(self, start: int = 0) -> bool:
        """Every delta's id is the offset after it: the previous one (``start`` first) plus
        its text's length. No gap, no overlap."""
        offset = start
        for event in self.events:
            if event.event == "delta":
                offset += len(event.data["text"])
                if int(event.id) != offset:
                    return False
        return True


class SSEDecoder:
    """Turn the lines of an SSE stream into SSEEvent objects and comment strings."""

    def __init__(self, *, json_data: bool = True):
        self.json_data = json_data
        self.event, self.data, self.id = "message", [], None
        self._partial = ""

    def feed(self, line: str) -> SSEEvent | str | None:
        """Take one line; return a finished event, a comment, or None."""
        if line == "":
            item = None
            if self.data:
                data = "\n".join(self.data)
                item = SSEEvent(self.event, json.loads(data) if self.json_data else data, self.id)
            self.event, self.data, self.id = "message", [], None
            return item
        if line.startswith(":"):
            return line[1:].strip()
        if line.startswith("event:"):
            self.event = line[6:].strip()
        elif line.startswith("data:"):
            self.data.append(line[5:].strip())
        elif line.startswith("id:"):
            self.id = line[3:].strip()
        return None

    def feed_text(self, text: str) -> list[SSEEvent | str]:
        """Take a piece of the stream cut anywhere; return the events and comments it completed."""
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        items = (self.feed(line.removesuffix("\r")) for line in lines)
        return [item for item in items if item is not None]


def iter_sse(response: httpx.Response, *, json_data: bool = True) -> Iterator[SSEEvent | str]:
    """Yield SSEEvent objects and comment strings from a streaming httpx response."""
    decoder = SSEDecoder(json_data=json_data)
    for line in response.iter_lines():
        item = decoder.feed(line)
        if item is not None:
            yield item


async def aiter_sse(
    response: httpx.Response, *, json_data: bool = True
) -> AsyncIterator[SSEEvent | str]:
    """The same, from an ``httpx.AsyncClient`` streaming response."""
    decoder = SSEDecoder(json_data=json_data)
    async for line in response.aiter_lines():
        item = decoder.feed(line)
        if item is not None:
            yield item


async def aiter_sse_timed(
    response: httpx.Response, *, json_data: bool = True
) -> AsyncIterator[tuple[SSEEvent, float]]:
    """Yield each event with the ``time.perf_counter()`` of the read that completed it (the
    benchmarks' clock); comments are skipped."""
    decoder = SSEDecoder(json_data=json_data)
    async for text in response.aiter_text():
        now = time.perf_counter()
        for item in decoder.feed_text(text):
            if not isinstance(item, str):
                yield item, now


def read_stream(
    client: httpx.Client,
    url: str,
    *,
    last_event_id: str | None = None,
    stop_after_deltas: int | None = None,
    on_delta=None,
    timeout: float = 30,
    method: str = "GET",
    json: dict | None = None,
) -> SSEResult:
    """Read an SSE stream to its final event (or until ``stop_after_deltas`` deltas).

    ``method="POST"`` with ``json``: a post that asks for its reply's stream in its response."""
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    events: list[SSEEvent] = []
    comments: list[str] = []
    with client.stream(method, url, headers=headers, json=json, timeout=timeout) as response:
        if response.status_code != 200:
            response.read()
            return SSEResult(response.status_code, dict(response.headers), [], [])
        for item in iter_sse(response):
            if isinstance(item, str):
                comments.append(item)
                continue
            events.append(item)
            if item.event == "delta":
                if on_delta is not None:
                    on_delta(item)
                deltas = sum(1 for e in events if e.event == "delta")
                if stop_after_deltas is not None and deltas >= stop_after_deltas:
                    break
            if item.event in ("done", "error"):
                break
        return SSEResult(response.status_code, dict(response.headers), events, comments)
