"""Streaming benchmark: N concurrent SSE clients through the app versus straight to the simulator.

Run from the repository root (``make bench`` does ``python bench/stream.py``)::

    .venv/bin/python bench/stream.py                       # SQLite in a temp dir, in-memory layer
    .venv/bin/python bench/stream.py --clients 1,50 --tps 80
    .venv/bin/python bench/stream.py --database-url postgres://postgres@127.0.0.1:5432/bench_stream \
        --redis-url redis://127.0.0.1:6379/3

One run starts one simulator process (``manage.py llm_simulator``) and ONE daphne process serving
the app against it, then, for every N in ``--clients``:

1. **direct**: N asyncio clients POST ``/v1/chat/completions`` (stream, include_usage) to the
   simulator at once and read its OpenAI chunks;
2. **app**: N clients, one conversation each, POST a message (202) and read the reply's SSE stream.

By default the N clients of a round start at once (a burst: the target below is judged on it).
With ``--spread S`` client i starts at i*S/N seconds instead, in both paths: N streams held
while new ones arrive at N/S a second, which is what a process serving N concurrent users at
that arrival rate sees (a capacity measure, reported beside the burst, never in place of it).

Both paths use the same httpx.AsyncClient code and the same incremental SSE parser; every event is
stamped with ``time.perf_counter()`` when the read that completed it returned. Every simulated
user has a client (and a keep-alive connection) of its own, opened before the timed part starts:
connection set-up is not measured, and N new connections at once would overflow daphne's listen
backlog (the kernel's count of such drops is reported as "listen overflows").

What is reported (milliseconds unless named otherwise):

- TTFT. direct: from sending the request to the first content chunk. app: from opening the stream
  request (``GET stream_url``, sent right after the POST's 202) to the first ``delta``; also from
  sending the POST, which is what a user waits. Added TTFT = app percentile minus direct
  percentile (p50 and p99), i.e. a difference of the two distributions, not of paired samples.
- Inter-token gap: time between consecutive deltas (chunks) of one stream, pooled over all
  streams of a round; app/direct ratio of the p50 and of the p99.
- Streams held: streams that ended with ``done`` (status completed).
- Tokens lost or duplicated: per stream, the concatenated deltas must equal the stored reply
  (``GET /api/messages/<id>``), every delta's ``id:`` must be the previous offset plus its length,
  and the received text split into the simulator's tokens must count exactly the simulator's
  ``completion_tokens`` (``usage.output_tokens`` of ``done``).
- Daphne's CPU seconds (utime+stime from /proc/<pid>/stat), RSS (VmRSS) and threads (from
  /proc/<pid>/status), sampled every 50 ms: before the round, at the peak (the sample with the
  most streams open at once) and after it settled (no CPU used for about a second, so the
  conversation title the app asks for after each reply is included). Per stream: CPU
  (after - before) / N; RSS (peak - before) / N, and / the streams open at the peak.
- Where the time goes: POST -> 202, GET stream -> response headers, and the runner's own
  ``ttft_ms`` (from the ``done`` event: upstream request to first token, inside the app).

Percentiles use the nearest-rank method on the sorted samples: the p-th percentile of n values is
the value at index ceil(p/100 * n) - 1 (so p99 of 50 values is their maximum, p99 of 1 value the
value itself). Nothing is asserted; the targets are printed with PASS or MISS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit, urlunsplit

import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from devtools.live import CSRF_TOKEN, run_app_server  # noqa: E402
from devtools.simulator import split_tokens  # noqa: E402
from devtools.simulator_process import run_simulator  # noqa: E402

MODEL = "gpt-4o-mini"
API_KEY = "sk-bench-simulator-key"
SYSTEM_PROMPT = "You are a helpful assistant. Answer in Markdown."
BENCH_USER = "bench-stream"
TARGET_ADDED_TTFT_P99_MS = 25.0
TARGET_AT_CLIENTS = 50
SAMPLE_EVERY = 0.05
ROUND_TIMEOUT = 180.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

SETUP_CODE = f"""
from django.contrib.auth import get_user_model
from django.test import Client
from chat.models import Conversation
user, _ = get_user_model().objects.get_or_create(username={BENCH_USER!r})
Conversation.objects.filter(user=user).delete()
client = Client()
client.force_login(user)
print("SESSION=" + client.cookies["sessionid"].value)
"""


# --- /proc -------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status(pid: int) -> tuple[int, int]:
    """VmRSS in bytes and the number of threads, from /proc/<pid>/status."""
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, threads


def system_busy() -> float:
    """CPU seconds the whole machine spent busy (all cores, /proc/stat), idle and steal excluded."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq = (
            int(x) for x in f.readline().split()[1:8]
        )
    return (user + nice + system + irq + softirq) / CLK_TCK


def listen_overflows() -> int | None:
    """The kernel's count of connections dropped because a listen backlog was full."""
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for head, values in zip(lines[::2], lines[1::2], strict=False):
        if head.startswith("TcpExt:"):
            row = dict(zip(head.split()[1:], values.split()[1:], strict=False))
            return int(row["ListenOverflows"]) if "ListenOverflows" in row else None
    return None


def machine() -> dict:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {
        "nproc": int(nproc) if nproc.isdigit() else os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg(),
    }


def disturbed(result: dict) -> list[str]:
    """Rounds in which processes outside the benchmark used more than 0.2 CPU on average.

    The database and Redis servers work for the app, so only the direct rounds (and the app
    rounds of a SQLite run without Redis) count.
    """
    quiet_app = result["config"]["database"] == "sqlite" and not result["config"]["redis_url"]
    notes = []
    for r in result["rounds"]:
        for path in ("direct", "app") if quiet_app else ("direct",):
            rate = r[path]["others_cpu_s"] / max(r[path]["wall_s"], 1e-9)
            if rate > 0.2:
                notes.append(f"N={r['clients']} {path}: {rate:.2f} CPU")
    return notes


# --- statistics ----------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile: the value at index ceil(p/100 * n) - 1 of the sorted values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(p / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "min": min(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values),
        "mean": sum(values) / len(values),
    }


def diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


# --- clients -------------------------------------------------------------------------------------


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


def parse_block(block: bytes) -> tuple[str, str | None, bytes | None]:
    event, event_id, data = "message", None, None
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            data = line[5:].strip()
        elif line.startswith(b"event:"):
            event = line[6:].strip().decode()
        elif line.startswith(b"id:"):
            event_id = line[3:].strip().decode()
    return event, event_id, data


async def read_events(
    response: httpx.Response, handle: Callable[[str, str | None, bytes | None, float], None]
) -> None:
    """Feed each complete SSE event to ``handle`` with the time its last byte was read."""
    buffer = b""
    async for chunk in response.aiter_raw():
        now = time.perf_counter()
        buffer += chunk
        while (end := buffer.find(b"\n\n")) >= 0:
            block, buffer = buffer[:end], buffer[end + 2 :]
            handle(*parse_block(block), now)


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

    def handle(event: str, event_id: str | None, data: bytes | None, now: float) -> None:
        if not data or data == b"[DONE]":
            return
        chunk = json.loads(data)
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
            s.status = response.status_code
            if response.status_code != 200:
                s.error = f"HTTP {response.status_code}: {(await response.aread())[:200]!r}"
                return s
            count.opened()
            try:
                await read_events(response, handle)
            finally:
                count.closed()
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        s.error = f"{type(exc).__name__}: {exc}"
    s.t_end = time.perf_counter()
    return s


async def app_stream(
    client: httpx.AsyncClient, conversation_id: int, content: str, count: OpenCount
) -> Stream:
    s = Stream()
    position = 0

    def handle(event: str, event_id: str | None, data: bytes | None, now: float) -> None:
        nonlocal position
        if data is None:
            return  # a comment or the retry field
        payload = json.loads(data)
        if event == "delta":
            text = payload["text"]
            if s.t_first is None:
                s.t_first = now
            s.arrivals.append(now)
            s.parts.append(text)
            if event_id is None or int(event_id) != position + len(text):
                s.offsets_ok = False
            position = int(event_id) if event_id is not None else position + len(text)
        elif event in ("done", "error"):
            s.final = event
            s.final_status = payload.get("status", "")
            if event == "done":
                s.usage_tokens = (payload.get("usage") or {}).get("output_tokens")
                s.server_ttft_ms = payload.get("ttft_ms")
            else:
                s.error = f"{payload.get('code')}: {payload.get('message')}"

    s.t_post = time.perf_counter()
    try:
        response = await client.post(
            f"/api/conversations/{conversation_id}/messages", json={"content": content}
        )
        s.status = response.status_code
        if response.status_code != 202:
            s.error = f"POST HTTP {response.status_code}: {response.text[:200]}"
            return s
        accepted = response.json()
        s.message_id = accepted["assistant_message"]["id"]
        s.t_open = time.perf_counter()
        async with client.stream(
            "GET", accepted["stream_url"], headers={"Accept": "text/event-stream"}
        ) as response:
            s.t_headers = time.perf_counter()
            s.status = response.status_code
            if response.status_code != 200:
                s.error = f"GET HTTP {response.status_code}: {(await response.aread())[:200]!r}"
                return s
            count.opened()
            try:
                await read_events(response, handle)
            finally:
                count.closed()
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


# --- the run -------------------------------------------------------------------------------------


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


class Sample(NamedTuple):
    t: float
    cpu_s: float
    rss: int
    threads: int
    open: int


class Sampler:
    """Samples a process's CPU seconds, RSS and threads (and the open streams) in the background."""

    def __init__(self, pid: int, count: OpenCount) -> None:
        self.pid = pid
        self.count = count
        self.samples: list[Sample] = []
        self._task: asyncio.Task | None = None

    def sample(self) -> Sample:
        row = Sample(time.perf_counter(), cpu_seconds(self.pid), *status(self.pid), self.count.now)
        self.samples.append(row)
        return row

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_EVERY)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def peak(self) -> Sample:
        """The sample with the most streams open (the largest RSS among those)."""
        return max(self.samples, key=lambda row: (row.open, row.rss))


async def settle(pid: int, *, quiet: float = 0.3, times: int = 3, limit: float = 30.0) -> None:
    """Wait until the process used (almost) no CPU in ``times`` intervals of ``quiet`` seconds.

    Nearly a second of quiet: a conversation title is one more upstream call after the reply,
    and the app only waits for it meanwhile.
    """
    deadline = time.monotonic() + limit
    last, calm = cpu_seconds(pid), 0
    while time.monotonic() < deadline and calm < times:
        await asyncio.sleep(quiet)
        now = cpu_seconds(pid)
        calm = calm + 1 if now - last <= 1.5 / CLK_TCK else 0
        last = now


def message(n: int, i: int, path: str) -> str:
    return f"Benchmark {path} round {n}, client {i}: explain streaming back-pressure briefly."


async def create_conversations(client: httpx.AsyncClient, n: int) -> list[int]:
    async def one(i: int) -> int:
        response = await client.post("/api/conversations", json={"title": f"bench {n}/{i}"})
        response.raise_for_status()
        return response.json()["id"]

    return await bounded([one(i) for i in range(n)], 20)


async def started_at(delay: float, coroutine):
    """Run ``coroutine`` after ``delay`` seconds (its own clock starts when it runs)."""
    if delay > 0:
        await asyncio.sleep(delay)
    return await coroutine


def delays(n: int, spread: float) -> list[float]:
    return [i * spread / n for i in range(n)]


async def direct_round(sim_url: str, sim_pid: int | None, n: int, spread: float = 0.0) -> dict:
    count = OpenCount()
    clients = [client() for _ in range(n)]
    try:
        await connected(
            clients, f"{sim_url}/models", headers={"Authorization": f"Bearer {API_KEY}"}
        )
        overflows0 = listen_overflows()
        cpu0, t0, busy0 = time.process_time(), time.perf_counter(), system_busy()
        sim0 = cpu_seconds(sim_pid) if sim_pid else None
        url = f"{sim_url}/chat/completions"
        async with asyncio.timeout(ROUND_TIMEOUT):
            streams = await asyncio.gather(
                *(
                    started_at(delay, direct_stream(c, url, message(n, i, "direct"), count))
                    for i, (c, delay) in enumerate(zip(clients, delays(n, spread), strict=True))
                )
            )
        wall = time.perf_counter() - t0
        client_cpu = time.process_time() - cpu0
        sim_cpu = cpu_seconds(sim_pid) - sim0 if sim_pid else None
        others = system_busy() - busy0 - client_cpu - (sim_cpu or 0)
        overflows1 = listen_overflows()
    finally:
        await closed(clients)
    ttft = [(s.t_first - s.t_open) * 1000 for s in streams if s.t_first is not None]
    gaps = [g * 1000 for s in streams for g in s.gaps()]
    tokens_ok = sum(1 for s in streams if s.usage_tokens is not None and s.tokens == s.usage_tokens)
    return {
        "streams": streams,
        "ttft_ms": summary(ttft),
        "ttft_values_ms": [round(v, 2) for v in ttft],
        "gap_ms": summary(gaps),
        "held": sum(1 for s in streams if s.held),
        "tokens_match_usage": tokens_ok,
        "errors": sorted({s.error for s in streams if s.error})[:5],
        "max_open": count.most,
        "wall_s": wall,
        "client_cpu_s": client_cpu,
        "simulator_cpu_s": sim_cpu,
        "others_cpu_s": others,
        "listen_overflows": diff(overflows1, overflows0),
    }


async def app_round(
    base_url: str, session: str, pid: int, sim_pid: int | None, n: int, spread: float = 0.0
) -> dict:
    count = OpenCount()
    async with app_client(base_url, session, 20) as setup:
        conversations = await create_conversations(setup, n)
    clients = [app_client(base_url, session) for _ in range(n)]
    try:
        await connected(clients, "/api/conversations")
        await settle(pid)
        sampler = Sampler(pid, count)
        before = sampler.sample()
        overflows0 = listen_overflows()
        sampler.start()
        sim0 = cpu_seconds(sim_pid) if sim_pid else None
        cpu0, busy0 = time.process_time(), system_busy()
        async with asyncio.timeout(ROUND_TIMEOUT):
            streams = await asyncio.gather(
                *(
                    started_at(delay, app_stream(c, cid, message(n, i, "app"), count))
                    for i, (c, cid, delay) in enumerate(
                        zip(clients, conversations, delays(n, spread), strict=True)
                    )
                )
            )
        at_end = sampler.sample()
        client_cpu = time.process_time() - cpu0
        sim_cpu = cpu_seconds(sim_pid) - sim0 if sim_pid else None
        others = system_busy() - busy0 - client_cpu - (sim_cpu or 0) - (at_end.cpu_s - before.cpu_s)
        overflows1 = listen_overflows()
    finally:
        await closed(clients)
    await settle(pid)
    after = sampler.sample()
    await sampler.stop()
    peak = sampler.peak()

    # The stored replies, fetched only now so that these reads are not in the numbers above.
    async with app_client(base_url, session, 20) as verify:

        async def stored(s: Stream) -> None:
            if s.message_id is None:
                return
            response = await verify.get(f"/api/messages/{s.message_id}")
            if response.status_code == 200:
                s.stored_text = response.json()["content"]

        await bounded([stored(s) for s in streams], 20)

    ttft_open = [(s.t_first - s.t_open) * 1000 for s in streams if s.t_first is not None]
    ttft_post = [(s.t_first - s.t_post) * 1000 for s in streams if s.t_first is not None]
    post_ms = [(s.t_open - s.t_post) * 1000 for s in streams if s.t_open is not None]
    headers_ms = [(s.t_headers - s.t_open) * 1000 for s in streams if s.t_headers is not None]
    server_ttft = [float(s.server_ttft_ms) for s in streams if s.server_ttft_ms is not None]
    gaps = [g * 1000 for s in streams for g in s.gaps()]
    lost = duplicated = 0
    for s in streams:
        if s.usage_tokens is not None:
            lost += max(s.usage_tokens - s.tokens, 0)
            duplicated += max(s.tokens - s.usage_tokens, 0)
    t_start = min(s.t_post for s in streams)
    last_end = max((s.t_end for s in streams if s.t_end is not None), default=at_end.t)
    return {
        "streams": streams,
        "ttft_open_ms": summary(ttft_open),
        "ttft_open_values_ms": [round(v, 2) for v in ttft_open],
        "ttft_post_ms": summary(ttft_post),
        "ttft_post_values_ms": [round(v, 2) for v in ttft_post],
        "post_ms": summary(post_ms),
        "stream_headers_ms": summary(headers_ms),
        "server_ttft_ms": summary(server_ttft),
        "gap_ms": summary(gaps),
        "held": sum(1 for s in streams if s.held),
        "text_equal": sum(
            1 for s in streams if s.stored_text is not None and s.text == s.stored_text
        ),
        "offsets_ok": sum(1 for s in streams if s.offsets_ok and s.parts),
        "tokens_match_usage": sum(
            1 for s in streams if s.usage_tokens is not None and s.tokens == s.usage_tokens
        ),
        "tokens_lost": lost,
        "tokens_duplicated": duplicated,
        "deltas_per_stream": summary([float(len(s.parts)) for s in streams]),
        "live_streams": sum(1 for s in streams if len(s.parts) > 1),
        "errors": sorted({s.error for s in streams if s.error})[:5],
        "max_open": count.most,
        "wall_s": last_end - t_start,
        "client_cpu_s": client_cpu,
        "simulator_cpu_s": sim_cpu,
        "others_cpu_s": others,
        "listen_overflows": diff(overflows1, overflows0),
        "daphne": {
            "cpu_s": {
                "before": before.cpu_s,
                "peak": peak.cpu_s,
                "end": at_end.cpu_s,
                "after": after.cpu_s,
            },
            "rss_mb": {
                "before": before.rss / 2**20,
                "peak": peak.rss / 2**20,
                "max": max(row.rss for row in sampler.samples) / 2**20,
                "after": after.rss / 2**20,
            },
            "threads": {
                "before": before.threads,
                "peak": peak.threads,
                "max": max(row.threads for row in sampler.samples),
                "after": after.threads,
            },
            "open_at_peak": peak.open,
            "cpu_s_per_stream": (after.cpu_s - before.cpu_s) / n,
            "cpu_s_per_stream_streaming": (at_end.cpu_s - before.cpu_s) / n,
            "rss_kb_per_stream": (peak.rss - before.rss) / 1024 / n,
            "rss_kb_per_open_stream": (peak.rss - before.rss) / 1024 / max(peak.open, 1),
            "cpu_utilisation": (at_end.cpu_s - before.cpu_s) / max(at_end.t - before.t, 1e-9),
        },
    }


def compare(direct: dict, app: dict) -> dict:
    d, a, p = direct["ttft_ms"], app["ttft_open_ms"], app["ttft_post_ms"]
    return {
        "added_ttft_ms": {k: diff(a.get(k), d.get(k)) for k in ("p50", "p99")},
        "added_ttft_from_post_ms": {k: diff(p.get(k), d.get(k)) for k in ("p50", "p99")},
        "gap_ratio": {
            k: ratio(app["gap_ms"].get(k), direct["gap_ms"].get(k)) for k in ("p50", "p99")
        },
    }


# --- output --------------------------------------------------------------------------------------


def fmt(value, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def pair(s: dict, spec: str = ".1f") -> str:
    return f"{fmt(s.get('p50'), spec)} / {fmt(s.get('p99'), spec)}"


def table(result: dict) -> str:
    rounds = result["rounds"]
    ns = [r["clients"] for r in rounds]
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, fn) -> None:
        rows.append((label, [fn(r) for r in rounds]))

    def section(label: str) -> None:
        rows.append((label, [""] * len(rounds)))

    section("time to first token, ms (p50 / p99)")
    row("  direct to simulator", lambda r: pair(r["direct"]["ttft_ms"]))
    row("  app, from stream open", lambda r: pair(r["app"]["ttft_open_ms"]))
    row("  added (app - direct)", lambda r: pair(r["compare"]["added_ttft_ms"]))
    row("  app, from POST", lambda r: pair(r["app"]["ttft_post_ms"]))
    row("  added from POST", lambda r: pair(r["compare"]["added_ttft_from_post_ms"]))
    row("  POST -> 202", lambda r: pair(r["app"]["post_ms"]))
    row("  GET stream -> headers", lambda r: pair(r["app"]["stream_headers_ms"]))
    row("  runner ttft_ms (server)", lambda r: pair(r["app"]["server_ttft_ms"], ".0f"))
    section("inter-token gap, ms (p50 / p99)")
    row("  direct", lambda r: pair(r["direct"]["gap_ms"]))
    row("  app", lambda r: pair(r["app"]["gap_ms"]))
    row("  ratio app/direct", lambda r: pair(r["compare"]["gap_ratio"], ".2f"))
    section("correctness")
    row("  direct streams finished", lambda r: f"{r['direct']['held']}/{r['clients']}")
    row("  app streams held (done)", lambda r: f"{r['app']['held']}/{r['clients']}")
    row("  deltas == stored text", lambda r: f"{r['app']['text_equal']}/{r['clients']}")
    row("  delta offsets contiguous", lambda r: f"{r['app']['offsets_ok']}/{r['clients']}")
    row("  tokens == usage (app)", lambda r: f"{r['app']['tokens_match_usage']}/{r['clients']}")
    row(
        "  tokens lost / dup (held)",
        lambda r: f"{r['app']['tokens_lost']} / {r['app']['tokens_duplicated']}",
    )
    row("  most app streams open at once", lambda r: f"{r['app']['max_open']}")
    row(
        "  live streams (>1 delta)",
        lambda r: f"{r['app']['live_streams']}/{r['clients']}",
    )
    section("daphne process")
    row(
        "  CPU s / stream (to settle)",
        lambda r: fmt(r["app"]["daphne"]["cpu_s_per_stream"], ".4f"),
    )
    row("  CPU busy while streaming", lambda r: f"{r['app']['daphne']['cpu_utilisation']:.0%}")
    row(
        "  RSS MB before/peak/after",
        lambda r: "{before:.0f}/{peak:.0f}/{after:.0f}".format(**r["app"]["daphne"]["rss_mb"]),
    )
    row(
        "  RSS KB / stream (/ open)",
        lambda r: (
            f"{fmt(r['app']['daphne']['rss_kb_per_stream'], '.0f')} "
            f"({fmt(r['app']['daphne']['rss_kb_per_open_stream'], '.0f')})"
        ),
    )
    row(
        "  threads before/max/after",
        lambda r: "{before}/{max}/{after}".format(**r["app"]["daphne"]["threads"]),
    )
    section("load generator, simulator, rest of machine (CPU s)")
    row(
        "  bench client direct / app",
        lambda r: f"{r['direct']['client_cpu_s']:.2f} / {r['app']['client_cpu_s']:.2f}",
    )
    row(
        "  simulator direct / app",
        lambda r: (
            f"{fmt(r['direct']['simulator_cpu_s'], '.2f')} / "
            f"{fmt(r['app']['simulator_cpu_s'], '.2f')}"
        ),
    )
    row(
        "  everything else dir/app",
        lambda r: f"{r['direct']['others_cpu_s']:.2f} / {r['app']['others_cpu_s']:.2f}",
    )
    row(
        "  listen overflows dir/app",
        lambda r: (
            f"{fmt(r['direct']['listen_overflows'], 'd')} / "
            f"{fmt(r['app']['listen_overflows'], 'd')}"
        ),
    )
    row(
        "  wall s direct / app",
        lambda r: f"{r['direct']['wall_s']:.2f} / {r['app']['wall_s']:.2f}",
    )

    width = max(len(label) for label, _ in rows) + 2
    col = max(16, *(len(v) + 2 for _, values in rows for v in values))
    lines = [f"{'':<{width}}" + "".join(f"{f'N={n}':>{col}}" for n in ns)]
    lines += [
        f"{label:<{width}}" + "".join(f"{v:>{col}}" for v in values) for label, values in rows
    ]
    return "\n".join(lines)


def targets(result: dict) -> list[tuple[str, bool | None, str]]:
    out: list[tuple[str, bool | None, str]] = []
    at = next((r for r in result["rounds"] if r["clients"] == TARGET_AT_CLIENTS), None)
    name = f"added TTFT p99 <= {TARGET_ADDED_TTFT_P99_MS:.0f} ms at {TARGET_AT_CLIENTS} streams"
    if at is None:
        out.append((name, None, f"not measured (no N={TARGET_AT_CLIENTS} round)"))
    else:
        spread = result["config"].get("spread_s") or 0
        for label, key in (
            (name, "added_ttft_ms"),
            ("  (same, from the POST)", "added_ttft_from_post_ms"),
        ):
            added = at["compare"][key]["p99"]
            measured = "no stream got a first delta" if added is None else f"{added:.1f} ms"
            # No first delta at all misses the target too.
            ok = added is not None and added <= TARGET_ADDED_TTFT_P99_MS
            if spread:  # not the burst the target is judged on: reported, never passed
                ok, measured = None, f"{measured} with starts spread over {spread:g} s (not judged)"
            out.append((label, ok, measured))
    bad = []
    for r in result["rounds"]:
        a, n = r["app"], r["clients"]
        problems = {
            "not held": n - a["held"],
            "text differs": n - a["text_equal"],
            "offsets": n - a["offsets_ok"],
            "token count != usage": n - a["tokens_match_usage"],
        }
        bad += [f"N={n}: {v} {k}" for k, v in problems.items() if v]
    out.append(
        (
            "no token lost or duplicated (every stream, every N)",
            not bad,
            "all streams exact" if not bad else "; ".join(bad),
        )
    )
    return out


def redact(url: str) -> str:
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def jsonable(round_result: dict) -> dict:
    return {k: v for k, v in round_result.items() if k != "streams"}


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--clients", default="1,50,200", help="Comma-separated N values (default 1,50,200)."
    )
    parser.add_argument("--ttft-ms", type=int, default=200, help="Simulator time to first token.")
    parser.add_argument("--tps", type=float, default=50.0, help="Simulator tokens per second.")
    parser.add_argument("--tokens", type=int, default=100, help="Tokens per reply.")
    parser.add_argument(
        "--spread",
        type=float,
        default=0.0,
        help="Start the N clients of a round evenly over this many seconds (default 0: a burst; "
        "the target is judged on the burst only).",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", ""),
        help="Database of the app (default: env DATABASE_URL, else a fresh SQLite file).",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL", ""),
        help="Redis for the channel layer and cache (default: env REDIS_URL, else none).",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="Write results here (default bench/results/)."
    )
    args = parser.parse_args(argv)
    try:
        args.client_counts = [int(x) for x in args.clients.split(",") if x.strip()]
    except ValueError:
        parser.error("--clients must be integers separated by commas, e.g. 1,50,200")
    if not args.client_counts or min(args.client_counts) < 1:
        parser.error("--clients needs at least one N >= 1")
    if args.spread < 0:
        parser.error("--spread must be >= 0 seconds")
    return args


def app_overrides() -> dict[str, str]:
    """Settings from this shell that reach the app process (which inherits the environment)."""
    prefixes = ("DB_POOL_", "CHAT_", "SSE_", "AI_", "ASGI_THREADS")
    return {
        k: v for k, v in sorted(os.environ.items()) if k.startswith(prefixes) and k != "AI_API_KEY"
    }


def git_state() -> dict:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout

    changed = [line[3:] for line in git("status", "--porcelain").splitlines() if line.strip()]
    return {"head": git("rev-parse", "--short", "HEAD").strip(), "changed_files": changed}


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"manage.py {args[0]} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


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


async def bench(args, base_url: str, session: str, pid: int, sim_url: str, sim_pid) -> list:
    # Warm-up, not measured: imports, the upstream client's pool, the first queries.
    async with app_client(base_url, session, 4) as c:
        convs = await create_conversations(c, 3)
        await asyncio.gather(
            *(app_stream(c, cid, f"warm-up {i}", OpenCount()) for i, cid in enumerate(convs))
        )
    await direct_round(sim_url, sim_pid, 3)
    await settle(pid)

    rounds = []
    for n in args.client_counts:
        await settle(pid)
        print(f"  N={n}: direct ...", end="", flush=True)
        direct = await direct_round(sim_url, sim_pid, n, args.spread)
        await asyncio.sleep(0.5)
        print(" app ...", end="", flush=True)
        app = await app_round(base_url, session, pid, sim_pid, n, args.spread)
        print(f" done ({direct['wall_s']:.1f} s + {app['wall_s']:.1f} s)", flush=True)
        for label, r in (("direct", direct), ("app", app)):
            if r["errors"]:
                print(f"    {label} errors: {r['errors']}", flush=True)
        rounds.append({"clients": n, "direct": direct, "app": app, "compare": compare(direct, app)})
    return rounds


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    host = machine()  # the load average before this run adds to it
    started = time.strftime("%Y%m%d-%H%M%S")
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        tmpdir = Path(tmp)
        database_url = args.database_url or f"sqlite:///{tmpdir / 'bench.sqlite3'}"
        engine = re.split(r"[:+]", database_url, maxsplit=1)[0]
        env = {
            "DJANGO_SETTINGS_MODULE": "aiproject.settings",
            "DATABASE_URL": database_url,
            "REDIS_URL": args.redis_url,
            "CHANNEL_LAYER_PREFIX": f"bench-stream-{os.getpid()}",
            "DEBUG": "false",
            "SECRET_KEY": "bench-stream-not-a-secret-" + "x" * 40,
            "AI_API_KEY": API_KEY,
            "AI_MODEL": MODEL,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",
            "SESSION_COOKIE_SECURE": "false",
            "CSRF_COOKIE_SECURE": "false",
            "SECURE_HSTS_SECONDS": "0",
            "LOG_LEVEL": "WARNING",
            # Every limit active (so the quota checks are measured) but never reached.
            "QUOTA_REQUESTS_PER_MINUTE": "1000000",
            "QUOTA_TOKENS_PER_DAY": "1000000000",
            "QUOTA_COST_PER_DAY_USD": "1000000",
            "QUOTA_COST_PER_MONTH_USD": "1000000",
        }
        print(
            f"bench/stream.py: database {engine}, "
            f"channel layer {'redis' if args.redis_url else 'in-memory'}, "
            f"simulator ttft {args.ttft_ms} ms, {args.tps:g} tok/s, {args.tokens} tokens"
        )
        if app_overrides():
            print(f"  app settings from the environment: {app_overrides()}")
        print("  migrating ...", flush=True)
        manage(env, "migrate", "--noinput", "-v", "0")
        out = manage(env, "shell", "-c", SETUP_CODE)
        session = next((line[8:] for line in out.splitlines() if line.startswith("SESSION=")), None)
        if not session:
            raise SystemExit(f"could not create a session:\n{out}")

        sim_args = ("--ttft-ms", str(args.ttft_ms), "--tps", str(args.tps))
        sim_args += ("--reply-tokens", str(args.tokens))
        with run_simulator(*sim_args, env=env) as simulator:
            sim_pid = simulator.pid
            app_env = {**env, "AI_BASE_URL": simulator.base_url}
            with run_app_server(env=app_env, log_dir=tmpdir) as server:
                pid = server.process.pid
                print(f"  daphne pid {pid} at {server.base_url}, simulator pid {sim_pid}")
                try:
                    rounds = asyncio.run(
                        bench(args, server.base_url, session, pid, simulator.base_url, sim_pid)
                    )
                except BaseException:
                    print(f"\ndaphne log (tail):\n{log_tail(server.log_path)}", file=sys.stderr)
                    raise
                problems = log_problems(server.log_path)

    result = {
        "started": started,
        "machine": host,
        "config": {
            "clients": args.client_counts,
            "ttft_ms": args.ttft_ms,
            "tps": args.tps,
            "tokens": args.tokens,
            "spread_s": args.spread,
            "database": engine,
            "database_url": redact(database_url),
            "redis_url": redact(args.redis_url),
            "channel_layer": "redis" if args.redis_url else "in-memory",
            "percentiles": "nearest rank: sorted[ceil(p/100*n) - 1]",
            "app_env_overrides": app_overrides(),
        },
        "git": git_state(),
        "rounds": [
            {**r, "direct": jsonable(r["direct"]), "app": jsonable(r["app"])} for r in rounds
        ],
    }
    result["targets"] = [
        {"target": name, "pass": ok, "measured": measured} for name, ok, measured in targets(result)
    ]
    result["app_log_problems"] = problems
    result["disturbed"] = disturbed(result)

    m = result["machine"]
    print()
    print(
        f"{m['nproc']} CPUs ({m['cpu_model']}), Python {m['python']}; "
        f"database {engine}, channel layer {result['config']['channel_layer']}; "
        f"simulator {args.ttft_ms} ms TTFT, {args.tps:g} tok/s, {args.tokens} tokens/reply"
        + (f"; starts spread over {args.spread:g} s" if args.spread else "; starts at once")
    )
    print(table(result))
    print()
    print("targets:")
    for name, ok, measured in targets(result):
        verdict = "----" if ok is None else ("PASS" if ok else "MISS")
        print(f"  {verdict}  {name}: {measured}")

    if result["disturbed"]:
        print(
            "\nNOTE: other processes were busy during "
            + ", ".join(result["disturbed"])
            + f" (load average {host['loadavg_at_start'][0]:.2f} at the start): "
            "these numbers are disturbed; run again on a quiet machine."
        )
    if problems:
        print("\nthe app logged:")
        for key, number in sorted(problems.items(), key=lambda item: -item[1]):
            print(f"  {number:5d} x {key}")

    path = args.json or REPO / "bench" / "results" / f"stream-{started}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
