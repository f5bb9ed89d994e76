"""The benchmark's SSE clients: one stream straight to the simulator (OpenAI chunks) and one
through the app (POST a message, then read the reply's events), both read by devtools.sse."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from devtools.live import CSRF_TOKEN
from devtools.simulator import split_tokens
from devtools.sse import SSEEvent, aiter_sse_timed

MODEL = "gpt-4o-mini"
API_KEY = "sk-bench-simulator-key"
SYSTEM_PROMPT = "You are a helpful assistant. Answer in Markdown."


class OpenCount:
    """How many streams are open right now, and the most at once."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0

    def opened(self) -> None:
        self.now += 1
        self.most = max(self.most, self.now)

    def closed(self) -> None:
        self.now -= 1


@dataclass
class Stream:
    message_id: int | None = None
    status: int | None = None
    error: str = ""
    t_post: float | None = None  # app: the POST is sent
    t_open: float | None = None  # the stream request is sent
    t_headers: float | None = None  # its response headers arrived
    t_first: float | None = None  # the first delta (content chunk) arrived
    t_end: float | None = None
    arrivals: list[float] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    offsets_ok: bool = True
    final: str = ""  # "done" / "error" (app), "done" (direct, after a finish_reason)
    final_status: str = ""
    usage_tokens: int | None = None
    server_ttft_ms: int | None = None
    stored_text: str | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def held(self) -> bool:
        return self.final == "done" and self.final_status in ("", "completed")

    @property
    def tokens(self) -> int:
        return len(split_tokens(self.text))

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.arrivals, self.arrivals[1:], strict=False)]


async def read_events(
    response: httpx.Response, handle: Callable[[SSEEvent, float], None], *, json_data: bool
) -> None:
    """Feed each complete SSE event to ``handle`` with the time its last byte was read."""
    async for event, now in aiter_sse_timed(response, json_data=json_data):
        handle(event, now)


async def read_stream_events(
    response: httpx.Response,
    s: Stream,
    handle: Callable[[SSEEvent, float], None],
    count: OpenCount,
    *,
    what: str = "",
    json_data: bool = True,
) -> bool:
    """Read the events of ``response`` into ``handle``, counted open meanwhile; False (and
    ``s.error``, its request named by ``what``) if it is not a stream but an error."""
    s.status = response.status_code
    if response.status_code != 200:
        head = f"{what} " if what else ""
        s.error = f"{head}HTTP {response.status_code}: {(await response.aread())[:200]!r}"
        return False
    count.opened()
    try:
        await read_events(response, handle, json_data=json_data)
    finally:
        count.closed()
    return True


async def direct_stream(
    client: httpx.AsyncClient, url: str, content: str, count: OpenCount
) -> Stream:
    s = Stream()
    body = {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": content},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
    }

    def handle(event: SSEEvent, now: float) -> None:
        if not event.data or event.data == "[DONE]":
            return
        chunk = json.loads(event.data)
        if chunk.get("usage"):
            s.usage_tokens = chunk["usage"]["completion_tokens"]
        for choice in chunk.get("choices") or ():
            text = (choice.get("delta") or {}).get("content")
            if text:
                if s.t_first is None:
                    s.t_first = now
                s.arrivals.append(now)
                s.parts.append(text)
            if choice.get("finish_reason"):
                s.final = "done"

    s.t_open = time.perf_counter()
    try:
        async with client.stream(
            "POST", url, json=body, headers={"Authorization": f"Bearer {API_KEY}"}
        ) as response:
            if not await read_stream_events(response, s, handle, count, json_data=False):
                return s
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        s.error = f"{type(exc).__name__}: {exc}"
    s.t_end = time.perf_counter()
    return s


def _handler(s: Stream) -> Callable[[SSEEvent, float], None]:
    """Record the events of an app stream into ``s`` (deltas, their offsets, the end)."""
    position = 0

    def handle(sse: SSEEvent, now: float) -> None:
        nonlocal position
        event, event_id, payload = sse.event, sse.id, sse.data
        if event == "delta":
            text = payload["text"]
            if s.t_first is None:
                s.t_first = now
            s.arrivals.append(now)
            s.parts.append(text)
            if event_id is None or int(event_id) != position + len(text):
                s.offsets_ok = False
            position = int(event_id) if event_id is not None else position + len(text)
        elif event == "accepted":  # a post's own stream: what its 202 would carry
            s.message_id = payload["assistant_message"]["id"]
        elif event in ("done", "error"):
            s.final = event
            s.final_status = payload.get("status", "")
            if event == "done":
                s.usage_tokens = (payload.get("usage") or {}).get("output_tokens")
                s.server_ttft_ms = payload.get("ttft_ms")
            else:
                s.error = f"{payload.get('code')}: {payload.get('message')}"

    return handle


async def _one_request(client, url: str, content: str, count: OpenCount, s: Stream, handle):
    headers = {"Accept": "text/event-stream"}
    async with client.stream("POST", url, json={"content": content}, headers=headers) as response:
        s.t_open = s.t_headers = time.perf_counter()
        return await read_stream_events(response, s, handle, count, what="POST")


async def _two_requests(client, url: str, content: str, count: OpenCount, s: Stream, handle):
    response = await client.post(url, json={"content": content})
    s.status = response.status_code
    if response.status_code != 202:
        s.error = f"POST HTTP {response.status_code}: {response.text[:200]}"
        return False
    accepted = response.json()
    s.message_id = accepted["assistant_message"]["id"]
    s.t_open = time.perf_counter()
    headers = {"Accept": "text/event-stream"}
    async with client.stream("GET", accepted["stream_url"], headers=headers) as response:
        s.t_headers = time.perf_counter()
        return await read_stream_events(response, s, handle, count, what="GET")


async def app_stream(
    client: httpx.AsyncClient,
    conversation_id: int,
    content: str,
    count: OpenCount,
    *,
    one_request: bool = False,
) -> Stream:
    """POST a message and read its reply's events: from ``stream_url`` after the 202, or
    (``one_request``) from the POST's own response (``Accept: text/event-stream``), where the
    response's headers stand for the 202 and the stream's open."""
    s = Stream()
    read = _one_request if one_request else _two_requests
    url = f"/api/conversations/{conversation_id}/messages"
    s.t_post = time.perf_counter()
    try:
        if not await read(client, url, content, count, s, _handler(s)):
            return s
    except (httpx.HTTPError, json.JSONDecodeError, KeyError, ValueError) as exc:
        s.error = s.error or f"{type(exc).__name__}: {exc}"
    s.t_end = time.perf_counter()
    return s


async def bounded(coroutines, limit: int) -> list:
    semaphore = asyncio.Semaphore(limit)

    async def run(coroutine):
        async with semaphore:
            return await coroutine

    return await asyncio.gather(*(run(c) for c in coroutines))


# One TLS context for every client (none is used over http://, but httpx builds one per client).
TLS = ssl.create_default_context()
TIMEOUT = httpx.Timeout(60, connect=10)


def client(n: int = 1, **kwargs) -> httpx.AsyncClient:
    """An HTTP client with a pool of ``n`` connections.

    Every simulated user gets a client of its own (one keep-alive connection), as a browser has:
    httpcore's pool checks every idle connection on every request, so one shared pool of 200
    connections costs the load generator more CPU than the streams it reads.
    """
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    return httpx.AsyncClient(timeout=TIMEOUT, limits=limits, verify=TLS, **kwargs)


def app_client(base_url: str, session: str, n: int = 1) -> httpx.AsyncClient:
    return client(
        n,
        base_url=base_url,
        cookies={"sessionid": session, "csrftoken": CSRF_TOKEN},
        headers={"X-CSRFToken": CSRF_TOKEN},
    )


async def connected(clients: list[httpx.AsyncClient], url: str, **kwargs) -> None:
    """Open each client's connection with one request, all at once, before the timed round.

    A burst of new connections overflows daphne's listen backlog (Twisted's default is 50) and
    the kernel retries the dropped SYNs after a second; that is the listener, not streaming, so
    the timed requests reuse these connections.
    """

    async def one(c: httpx.AsyncClient) -> None:
        (await c.get(url, **kwargs)).raise_for_status()

    async with asyncio.timeout(120):
        await asyncio.gather(*(one(c) for c in clients))


async def closed(clients: list[httpx.AsyncClient]) -> None:
    await asyncio.gather(*(c.aclose() for c in clients))
