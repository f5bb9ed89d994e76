"""One round of the streaming benchmark: N clients straight to the simulator, then N through
the app, with the daphne process sampled meanwhile; and the comparison of the two."""

from __future__ import annotations

import asyncio
import time

import httpx

from bench.common import summary
from bench.stream_bench.clients import (
    API_KEY,
    OpenCount,
    Stream,
    app_client,
    app_stream,
    bounded,
    client,
    closed,
    connected,
    direct_stream,
)
from bench.stream_bench.procfs import (
    Pids,
    Sampler,
    cpu_seconds,
    listen_overflows,
    settle,
    system_busy,
)

ROUND_TIMEOUT = 180.0


def diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def message(n: int, i: int, path: str) -> str:
    return f"Benchmark {path} round {n}, client {i}: explain streaming back-pressure briefly."


async def create_conversations(
    client: httpx.AsyncClient, n: int, *, titled: bool = True
) -> list[int]:
    """N conversations; ``titled`` (the rounds): named already, so their replies ask for no
    title; untitled, each first reply is followed by the title call (the title round)."""

    async def one(i: int) -> int:
        body = {"title": f"bench {n}/{i}"} if titled else {}
        response = await client.post("/api/conversations", json=body)
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
    base_url: str,
    session: str,
    pid: Pids,
    sim_pid: int | None,
    n: int,
    spread: float = 0.0,
    *,
    titled: bool = True,
    meters: tuple = (),
    one_request: bool = False,
) -> dict:
    """N clients through the app. ``meters`` (bench/capacity.py): objects whose ``begin()`` and
    ``end()`` are called when the clients start and when the last stream has ended."""
    count = OpenCount()
    async with app_client(base_url, session, 20) as setup:
        conversations = await create_conversations(setup, n, titled=titled)
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
        for meter in meters:
            meter.begin()
        async with asyncio.timeout(ROUND_TIMEOUT):
            streams = await asyncio.gather(
                *(
                    started_at(
                        delay,
                        app_stream(c, cid, message(n, i, "app"), count, one_request=one_request),
                    )
                    for i, (c, cid, delay) in enumerate(
                        zip(clients, conversations, delays(n, spread), strict=True)
                    )
                )
            )
        at_end = sampler.sample()
        for meter in meters:
            meter.end()
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
