"""Capacity: what one reply and one open stream cost each part of the stack, where the stack
first gives way as the arrival rate grows, and what 1k, 10k and 100k concurrent streams take.

Run from the repository root (docs/capacity.md has the runs and the model)::

    .venv/bin/python bench/capacity.py                          # 2 processes, rates 2..16/s
    .venv/bin/python bench/capacity.py --processes 1 --rates 4 --tokens 400

It starts a PostgreSQL cluster of its own (initdb; fsync on, as in production) and a
redis-server of its own (so every transaction, command, byte and CPU second they count is the
app's), the simulator, K daphne processes and the shipped nginx/nginx.conf in front of them
(bench/stream_bench/front.py). Then, for each rate R in ``--rates``, one step: R x
``--step-seconds`` users arrive evenly over ``--step-seconds`` (an open loop: arrivals do not
wait for earlier replies), each creating a conversation and posting one message, then reading
its reply's SSE stream through nginx to the end. nginx balances the POST and the stream's GET
independently, so with K > 1 about (K-1)/K of the streams are read on another process than the
one writing the reply: those follow it through Redis (the channel layer), as in production.

For each step it reports the service seen by the users (added TTFT from the POST, inter-token
gaps, every stream held and exact), the CPU seconds of every part (each daphne process, nginx,
redis-server, the PostgreSQL cluster with its exited backends, the simulator, this load
generator, the machine), Redis commands and bytes, PostgreSQL commits, rows and WAL, and the
daphne processes' RSS with the streams open; then per reply. The first step that breaks the
objective (``--slo-added-ttft-ms``, ``--slo-gap-ms``, every stream held and exact) ends the
ramp; the busiest part at that step is the first bottleneck. The projection to 1k/10k/100k
streams uses the costs per reply of the last step that held. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import common  # noqa: E402
from bench.capacity_bench.meters import CpuMeter, PostgresMeter, RedisMeter  # noqa: E402
from bench.capacity_bench.model import busiest, per_reply, projection, verdict  # noqa: E402
from bench.capacity_bench.stack import running_stack  # noqa: E402
from bench.common import summary  # noqa: E402
from bench.stream_bench.rounds import app_round  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2, help="daphne processes (default 2)")
    parser.add_argument(
        "--rates", default="2,4,6,8,10,12,14,16", help="replies started per second, one step each"
    )
    parser.add_argument(
        "--affinity",
        action="store_true",
        help="nginx sends every request of a client connection to one process (hash "
        "$connection): a reply's stream is read where it is written, no cross-process follow",
    )
    parser.add_argument(
        "--two-requests",
        action="store_true",
        help="each user POSTs (202) and then GETs stream_url; by default the POST asks for its "
        "reply's stream in its own response (Accept: text/event-stream), as the chat page does",
    )
    parser.add_argument("--step-seconds", type=float, default=15.0)
    parser.add_argument("--ttft-ms", type=int, default=200)
    parser.add_argument("--tps", type=float, default=50.0)
    parser.add_argument("--tokens", type=int, default=100, help="tokens per reply")
    parser.add_argument("--slo-added-ttft-ms", type=float, default=1000.0)
    parser.add_argument("--slo-gap-ms", type=float, default=250.0)
    parser.add_argument(
        "--keep-going", action="store_true", help="run every rate, even after the objective broke"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        args.rate_list = [float(x) for x in args.rates.split(",") if x.strip()]
    except ValueError:
        parser.error("--rates must be numbers separated by commas, e.g. 2,4,8")
    if not args.rate_list or min(args.rate_list) <= 0:
        parser.error("--rates needs rates > 0")
    if args.processes < 1 or args.step_seconds <= 0 or args.tokens < 1 or args.tps <= 0:
        parser.error("--processes, --step-seconds, --tokens and --tps must be positive")
    return args


def meters_of(stack) -> tuple[CpuMeter, RedisMeter, PostgresMeter]:
    pids = {f"daphne{i}": s.process.pid for i, s in enumerate(stack.servers)}
    cpu = CpuMeter(
        {**pids, "redis": stack.redis.process.pid, "simulator": stack.simulator.pid},
        {"nginx": stack.nginx_pid, "postgres": stack.pg.postmaster_pid()},
    )
    return cpu, RedisMeter(stack.redis.client()), PostgresMeter(stack.pg.connect)


def idle_rates(stack, seconds: float) -> dict:
    """What the stack does per second with no traffic (timers, the channel layer's receive
    loops, pool checks): subtracted from each step before dividing by its replies."""
    cpu, redis_meter, pg_meter = meters_of(stack)
    for meter in (cpu, redis_meter, pg_meter):
        meter.begin()
    time.sleep(seconds)
    for meter in (cpu, redis_meter, pg_meter):
        meter.end()
    used = cpu.result()
    wall = used.pop("wall")
    return {
        "seconds": wall,
        "cpu_s": {k: v / wall for k, v in used.items()},
        "redis": {k: v / wall for k, v in redis_meter.result().items()},
        "postgres": {k: v / wall for k, v in pg_meter.result().items()},
    }


async def run_step(args, stack, rate: float, idle: dict) -> dict:
    n = max(round(rate * args.step_seconds), 1)
    cpu, redis_meter, pg_meter = meters_of(stack)
    pids = {k: v for k, v in cpu.pids.items() if k.startswith("daphne")}
    r = await app_round(
        stack.base_url,
        stack.session,
        tuple(pids.values()),
        stack.simulator.pid,
        n,
        args.step_seconds,
        meters=(cpu, redis_meter, pg_meter),
        one_request=not args.two_requests,
    )
    streams = r.pop("streams")
    durations = [s.t_end - s.t_post for s in streams if s.t_end is not None]
    cpu_s = cpu.result() | {"bench client": r["client_cpu_s"]}
    added_post = [
        (s.t_first - s.t_post) * 1000 - args.ttft_ms for s in streams if s.t_first is not None
    ]
    tokens = [s.usage_tokens for s in streams if s.usage_tokens]
    step = {
        "rate": rate,
        "replies_started": n,
        "replies": r["held"],
        "held": r["held"],
        "inexact": n - min(r["text_equal"], r["offsets_ok"], r["tokens_match_usage"]),
        "errors": r["errors"],
        "tokens_per_reply": sum(tokens) / len(tokens) if tokens else 0,
        "streams_open_max": r["max_open"],
        "streams_open_mean": sum(durations) / cpu_s["wall"],
        "added_ttft_post_ms": summary(added_post),
        "post_ms": r["post_ms"],
        "gap_ms": r["gap_ms"],
        "cpu_s": cpu_s,
        "redis": redis_meter.result(),
        "postgres": pg_meter.result(),
        "postgres_statements": pg_meter.statements,
        "daphne_rss_mb": r["daphne"]["rss_mb"],
        "daphne_open_at_peak": r["daphne"]["open_at_peak"],
    }
    step["per_reply"] = per_reply(step, idle)
    step["broken"] = verdict(
        step, {"added_ttft_ms": args.slo_added_ttft_ms, "gap_ms": args.slo_gap_ms}
    )
    return step


def show(step: dict, nproc: int) -> None:
    c, t, g = step["per_reply"], step["added_ttft_post_ms"], step["gap_ms"]
    print(
        f"  rate {step['rate']:g}/s: {step['held']}/{step['replies_started']} held, "
        f"open mean {step['streams_open_mean']:.1f} max {step['streams_open_max']}; "
        f"added TTFT from POST p50 {t['p50']:.0f} p99 {t['p99']:.0f} ms; "
        f"gap p50 {g['p50']:.0f} p99 {g['p99']:.0f} ms"
    )
    print(
        f"    per reply: daphne {c['daphne_cpu_ms']:.1f} ms CPU, nginx {c['nginx_cpu_ms']:.1f}, "
        f"redis {c['redis_cpu_ms']:.2f}, postgres {c['postgres_cpu_ms']:.1f}; "
        f"redis {c['redis_commands']:.1f} commands ({c['redis_messages']:.1f} messages delivered), "
        f"{c['redis_bytes'] / 1024:.1f} KB ({c['redis_bytes_per_token']:.0f} B/token); "
        f"postgres {c['pg_commits']:.1f} commits, {c['pg_rows_written']:.1f} rows written, "
        f"{c['pg_wal_kb']:.1f} KB WAL"
    )
    shares = ", ".join(
        f"{name} {cores:.2f} ({share:.0%})" for name, cores, share in busiest(step, nproc)
    )
    print(f"    cores busy (share of what it can use): {shares}")
    if step["broken"]:
        print(f"    OBJECTIVE BROKEN: {'; '.join(step['broken'])}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    host = {**common.machine(), "loadavg_at_start": os.getloadavg()}
    started = time.strftime("%Y%m%d-%H%M%S")
    most = round(max(args.rate_list) * (args.step_seconds + 10))
    steps: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as tmp:
        print(
            f"bench/capacity.py: {args.processes} daphne processes behind nginx"
            + (" (affinity)" if args.affinity else "")
            + ("; two requests per reply" if args.two_requests else "; one request per reply")
            + "; starting ..."
        )
        with running_stack(
            processes=args.processes,
            affinity=args.affinity,
            ttft_ms=args.ttft_ms,
            tps=args.tps,
            tokens=args.tokens,
            most_streams=most,
            workdir=Path(tmp),
        ) as stack:
            asyncio.run(warm_up(stack))
            idle_rss = [read_rss_mb(s.process.pid) for s in stack.servers]
            idle = idle_rates(stack, 10.0)
            print(
                "  idle, per second: "
                + ", ".join(f"{k} {v * 1000:.1f} ms CPU" for k, v in idle["cpu_s"].items())
                + f"; redis {idle['redis']['total_commands_processed']:.1f} commands, "
                f"postgres {idle['postgres']['commits']:.1f} commits"
            )
            for rate in args.rate_list:
                step = asyncio.run(run_step(args, stack, rate, idle))
                steps.append(step)
                show(step, host["nproc"])
                if step["broken"] and not args.keep_going:
                    break
    held = [s for s in steps if not s["broken"]]
    basis = held[-1] if held else None
    result = {
        "started": started,
        "machine": host,
        "loadavg_at_end": os.getloadavg(),
        "config": {k: v for k, v in vars(args).items() if k not in ("json",)},
        "git": common.git_state(),
        "idle_rss_mb_per_process": idle_rss,
        "idle_per_second": idle,
        "steps": steps,
        "first_broken": next((s for s in steps if s["broken"]), None) is not None,
    }
    if basis is not None:
        rss = basis["daphne_rss_mb"]
        open_ = max(basis["daphne_open_at_peak"], 1)
        # From the processes' RSS before the first step (Python rarely gives memory back, so a
        # step's own "before" already holds what earlier steps grew).
        kb_per_stream = max(rss["max"] - sum(idle_rss), 0) * 1024 / open_
        reply_s = args.ttft_ms / 1000 + args.tokens / args.tps
        result["basis_rate"] = basis["rate"]
        result["kb_per_open_stream"] = kb_per_stream
        result["projection"] = projection(
            basis["per_reply"],
            reply_seconds=reply_s,
            rss_mb_per_process=max(idle_rss),
            kb_per_open_stream=kb_per_stream,
        )
        print(
            f"\nfrom the step at {basis['rate']:g}/s ({kb_per_stream:.0f} KB RSS per open stream, "
            f"{max(idle_rss):.0f} MB per idle process, a reply open {reply_s:.1f} s):"
        )
        for row in result["projection"]:
            print(
                f"  {row['streams']:>7,} streams ({row['replies_per_s']:,.0f} replies/s): "
                f"{row['web_processes']} web processes, {row['web_memory_gb']:.1f} GB; "
                f"nginx {row['nginx_cores']:.1f} cores; redis {row['redis_cores']:.2f} cores "
                f"({row['redis_shards']} shards, {row['redis_ops_per_s']:,.0f} ops/s, "
                f"{row['redis_mb_per_s']:.1f} MB/s); postgres {row['pg_cores']:.1f} cores, "
                f"{row['pg_commits_per_s']:,.0f} commits/s, {row['pg_wal_mb_per_s']:.1f} MB/s WAL"
            )
    print(f"\nload average at the start {host['loadavg_at_start']}, at the end {os.getloadavg()}")
    path = args.json or REPO / "bench" / "results" / f"capacity-{started}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"results: {path}")
    return 0


def read_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def warm_up(stack) -> None:
    """Imports, the pools' first connections, the first queries: not measured."""
    pids = tuple(s.process.pid for s in stack.servers)
    await app_round(stack.base_url, stack.session, pids, stack.simulator.pid, 6)


if __name__ == "__main__":
    sys.exit(main())
