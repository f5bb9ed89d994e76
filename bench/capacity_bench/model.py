"""From one step's measurements to costs per reply and per open stream, and from those to what
1k, 10k and 100k concurrent streams take (bench/capacity.py; the assumptions are in
docs/capacity.md)."""

from __future__ import annotations

import math

# Planning headroom: a web process or a PostgreSQL core planned at most this busy, so a burst
# (a deploy's reconnects, a popular hour) has room; Redis likewise (one core per instance).
WEB_BUSY, REDIS_BUSY, PG_BUSY = 0.6, 0.5, 0.6
STREAMS_TARGETS = (1_000, 10_000, 100_000)


def per_reply(step: dict, idle: dict) -> dict:
    """Costs of one reply at this step: what the step used, less what the stack uses idle in as
    long (``idle``: per second), divided by the replies that completed."""
    replies = max(step["replies"], 1)
    wall = step["cpu_s"]["wall"]

    def net(kind: str, key: str) -> float:
        return max(step[kind].get(key, 0.0) - idle[kind].get(key, 0.0) * wall, 0.0) / replies

    daphne = sum(net("cpu_s", k) for k in step["cpu_s"] if k.startswith("daphne"))
    tokens = step["tokens_per_reply"] or 1
    redis_bytes = net("redis", "total_net_input_bytes") + net("redis", "total_net_output_bytes")
    pg = step["postgres"]
    return {
        "daphne_cpu_ms": daphne * 1000,
        "nginx_cpu_ms": net("cpu_s", "nginx") * 1000,
        "redis_cpu_ms": net("cpu_s", "redis") * 1000,
        "postgres_cpu_ms": net("cpu_s", "postgres") * 1000,
        "redis_commands": net("redis", "total_commands_processed"),
        # channels-redis: a message delivered to a process is one BZPOPMIN that returned it
        # and one ZPOPMIN of its backup copy (the receive loop's acknowledgement).
        "redis_messages": net("redis", "zpopmin"),
        "redis_bytes": redis_bytes,
        "redis_bytes_per_token": redis_bytes / tokens,
        "pg_commits": net("postgres", "commits"),
        "pg_rows_written": (pg["rows_inserted"] + pg["rows_updated"] + pg["rows_deleted"])
        / replies,
        "pg_wal_kb": net("postgres", "wal_bytes") / 1024,
    }


def projection(costs: dict, *, reply_seconds: float, rss_mb_per_process: float,
               kb_per_open_stream: float) -> list[dict]:  # fmt: skip
    """What N concurrent streams take, each open for ``reply_seconds`` (so N / reply_seconds
    replies start every second), at the measured costs per reply."""
    rows = []
    for streams in STREAMS_TARGETS:
        rate = streams / reply_seconds
        web_cores = rate * costs["daphne_cpu_ms"] / 1000 / WEB_BUSY
        processes = max(math.ceil(web_cores), 1)
        memory_gb = (processes * rss_mb_per_process + streams * kb_per_open_stream / 1024) / 1024
        redis_cores = rate * costs["redis_cpu_ms"] / 1000
        pg_cores = rate * costs["postgres_cpu_ms"] / 1000 / PG_BUSY
        rows.append(
            {
                "streams": streams,
                "replies_per_s": rate,
                "web_processes": processes,
                "web_memory_gb": memory_gb,
                "nginx_cores": rate * costs["nginx_cpu_ms"] / 1000,
                "redis_cores": redis_cores,
                "redis_shards": max(math.ceil(redis_cores / REDIS_BUSY), 1),
                "redis_ops_per_s": rate * costs["redis_commands"],
                "redis_mb_per_s": rate * costs["redis_bytes"] / 2**20,
                "pg_cores": pg_cores,
                "pg_commits_per_s": rate * costs["pg_commits"],
                "pg_wal_mb_per_s": rate * costs["pg_wal_kb"] / 1024,
            }
        )
    return rows


def verdict(step: dict, slo: dict) -> list[str]:
    """What broke the service objective at this step (empty: it held)."""
    broken = []
    if step["errors"] or step["held"] < step["replies_started"]:
        broken.append(f"{step['replies_started'] - step['held']} streams not held")
    if step["inexact"]:
        broken.append(f"{step['inexact']} streams not exact")
    added = step["added_ttft_post_ms"]["p99"]
    if added is None or added > slo["added_ttft_ms"]:
        broken.append(f"added TTFT from the POST p99 {added} ms > {slo['added_ttft_ms']}")
    gap = step["gap_ms"]["p99"]
    if gap is None or gap > slo["gap_ms"]:
        broken.append(f"inter-token gap p99 {gap} ms > {slo['gap_ms']}")
    return broken


def busiest(step: dict, nproc: int) -> list[tuple[str, float, float]]:
    """Each part's CPU as a share of what it can use (a daphne process or redis-server: one core,
    their event loop; PostgreSQL, nginx and the machine: every core), busiest first."""
    wall = step["cpu_s"]["wall"]
    shares = []
    for name, seconds in step["cpu_s"].items():
        if name == "wall":
            continue
        cores = seconds / wall
        limit = 1.0 if name.startswith("daphne") or name in ("redis", "simulator") else nproc
        shares.append((name, cores, cores / limit))
    return sorted(shares, key=lambda row: -row[2])
