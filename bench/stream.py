"""Streaming benchmark: N concurrent SSE clients through the app versus straight to the simulator.

Run from the repository root (``make bench`` does ``python bench/stream.py``)::

    .venv/bin/python bench/stream.py                       # SQLite in a temp dir, in-memory layer
    .venv/bin/python bench/stream.py --clients 1,50 --tps 80
    .venv/bin/python bench/stream.py --database-url postgres://postgres@127.0.0.1:5432/bench_stream \
        --redis-url redis://127.0.0.1:6379/3

One run starts one simulator process (``python -m devtools.simulator``) and ONE daphne process
serving the app against it, then, for every N in ``--clients``:

1. **direct**: N asyncio clients POST ``/v1/chat/completions`` (stream, include_usage) to the
   simulator at once and read its OpenAI chunks;
2. **app**: N clients, one conversation each, POST a message (202) and read the reply's SSE stream.

Peers, between the two (bench/stream_bench/peers.py), read by the direct path's clients:
``--floor``, the stack with no app (daphne, Django, the SDK: bench/stream_bench/floor_app.py),
and ``--litellm PATH``, the LiteLLM proxy; each is reported with what it adds to the direct path.

By default the N clients of a round start at once (a burst: the target below is judged on it).
With ``--spread S`` client i starts at i*S/N seconds instead, in both paths: N streams held
while new ones arrive at N/S a second, which is what a process serving N concurrent users at
that arrival rate sees (a capacity measure, reported beside the burst, never in place of it).

Both paths use the same httpx.AsyncClient code and the same incremental SSE parser (devtools.sse,
the tests' own); every event is stamped with ``time.perf_counter()`` when the read that completed
it returned. Every simulated user has a client (and a keep-alive connection) of its own, opened
before the timed part starts: connection set-up is not measured, and N new connections at once
would overflow daphne's listen backlog (the kernel's count of such drops is reported as "listen
overflows").

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

The parts live in bench/stream_bench/: clients (the two SSE clients), procfs (CPU, RSS and threads
from /proc, sampled), rounds (one N: direct, then app) and report (the table and the targets).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import common  # noqa: E402
from bench.common import git_state, redact  # noqa: E402
from bench.stream_bench.clients import OpenCount, app_client, app_stream  # noqa: E402
from bench.stream_bench.front import run_front  # noqa: E402
from bench.stream_bench.litellm import run_litellm  # noqa: E402
from bench.stream_bench.logs import log_problems, log_tail  # noqa: E402
from bench.stream_bench.peers import Proxy, run_floor, versus_direct  # noqa: E402
from bench.stream_bench.procfs import Pids, settle  # noqa: E402
from bench.stream_bench.report import disturbed, jsonable, table, targets  # noqa: E402
from bench.stream_bench.rounds import (  # noqa: E402
    app_round,
    compare,
    create_conversations,
    direct_round,
)
from bench.stream_bench.setup import app_env, prepared_session  # noqa: E402
from devtools.live import run_app_server  # noqa: E402
from devtools.simulator_process import run_simulator  # noqa: E402


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
        "--processes",
        type=int,
        default=1,
        help="Daphne processes of the app (default 1). K > 1 runs K processes behind the "
        "shipped nginx/nginx.conf, as compose's WEB_REPLICAS=K does; needs --redis-url "
        "(a reply's stream may land on another process).",
    )
    parser.add_argument(
        "--two-requests",
        action="store_true",
        help="The app's clients POST (202) and then GET stream_url: the flow of an API client "
        "that does not ask for the stream in the post. By default each POST asks for its "
        "reply's events in its own response (Accept: text/event-stream), as the chat page "
        "does: one request, and 'POST -> 202' is the POST to its response's headers, "
        "'GET stream -> headers' zero.",
    )
    parser.add_argument(
        "--title-replies",
        type=int,
        default=5,
        help="After the rounds, this many first replies (one after another) with the title "
        "call that follows each, against as many without: the title's CPU apart (0: skip).",
    )
    parser.add_argument(
        "--litellm",
        default=os.environ.get("LITELLM", ""),
        help="The litellm script of a LiteLLM venv (bash bench/install-litellm.sh makes "
        ".venv-litellm): also run each N through the LiteLLM proxy in front of the same "
        "simulator, as a peer (default: env LITELLM, else not run).",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="Also run each N through the stack's floor (bench/stream_bench/floor_app.py: "
        "daphne, Django and the SDK forwarding the stream with no app around them), as a peer.",
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
    if args.processes < 1:
        parser.error("--processes must be >= 1")
    if args.processes > 1 and not args.redis_url:
        parser.error("--processes > 1 needs --redis-url (the cross-process channel layer)")
    if args.litellm and not os.access(args.litellm, os.X_OK):
        parser.error(f"--litellm: {args.litellm} is not an executable (bench/install-litellm.sh)")
    return args


def app_overrides() -> dict[str, str]:
    """Settings from this shell that reach the app process (which inherits the environment)."""
    prefixes = ("DB_POOL_", "CHAT_", "SSE_", "AI_", "ASGI_THREADS")
    return {
        k: v for k, v in sorted(os.environ.items()) if k.startswith(prefixes) and k != "AI_API_KEY"
    }


async def bench(
    args, base_url: str, session: str, pid: Pids, sim_url: str, sim_pid, peers: dict[str, Proxy]
) -> tuple[list, dict | None]:
    # Warm-up, not measured: imports, the upstream client's pool, the first queries.
    async with app_client(base_url, session, 4) as c:
        convs = await create_conversations(c, 3)
        await asyncio.gather(
            *(app_stream(c, cid, f"warm-up {i}", OpenCount()) for i, cid in enumerate(convs))
        )
    await direct_round(sim_url, sim_pid, 3)
    for proxy in peers.values():
        await direct_round(proxy.base_url, proxy.pid, 3)
    await settle(pid)

    rounds = []
    for n in args.client_counts:
        await settle(pid)
        print(f"  N={n}: direct ...", end="", flush=True)
        direct = await direct_round(sim_url, sim_pid, n, args.spread)
        await asyncio.sleep(0.5)
        measured = {}
        for name, proxy in peers.items():
            print(f" {name} ...", end="", flush=True)
            proxied = await direct_round(proxy.base_url, proxy.pid, n, args.spread)
            measured[name] = {**jsonable(proxied), "versus_direct": versus_direct(direct, proxied)}
            await asyncio.sleep(0.5)
        print(" app ...", end="", flush=True)
        app = await app_round(
            base_url, session, pid, sim_pid, n, args.spread, one_request=not args.two_requests
        )
        print(f" done ({direct['wall_s']:.1f} s + {app['wall_s']:.1f} s)", flush=True)
        for label, r in (("direct", direct), ("app", app)):
            if r["errors"]:
                print(f"    {label} errors: {r['errors']}", flush=True)
        rounds.append(
            {
                "clients": n,
                "direct": direct,
                "app": app,
                "compare": compare(direct, app),
                **measured,
            }
        )
    print("  title round ...", flush=True)
    title = await title_cost(args, base_url, session, pid, sim_pid)
    return rounds, title


async def title_cost(args, base_url: str, session: str, pid: Pids, sim_pid) -> dict | None:
    """Daphne's CPU per first reply with its title call and without (one reply at a time)."""
    if args.title_replies < 1:
        return None
    per_reply = {}
    for titled in (True, False):
        cpu = 0.0
        for _ in range(args.title_replies):
            r = await app_round(
                base_url, session, pid, sim_pid, 1, titled=titled, one_request=not args.two_requests
            )
            cpu += r["daphne"]["cpu_s_per_stream"]
        per_reply["with_title" if not titled else "without_title"] = cpu / args.title_replies
    return {
        "replies": args.title_replies,
        "cpu_s_per_reply_without_title": per_reply["without_title"],
        "cpu_s_per_reply_with_title": per_reply["with_title"],
        "title_cpu_s": per_reply["with_title"] - per_reply["without_title"],
    }


def run_peers(args, stack: ExitStack, simulator_url: str, log_dir: Path) -> dict[str, Proxy]:
    """The peers asked for (``--floor``, ``--litellm``), served in front of the simulator until
    ``stack`` closes."""
    peers = {}
    if args.floor:
        peers["floor"] = stack.enter_context(run_floor(simulator_url, log_dir))
    if args.litellm:
        peers["litellm"] = stack.enter_context(run_litellm(args.litellm, simulator_url, log_dir))
    return peers


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    host = {
        **common.machine(),
        "loadavg_at_start": os.getloadavg(),
    }  # the load average before this run adds to it
    started = time.strftime("%Y%m%d-%H%M%S")
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        tmpdir = Path(tmp)
        database_url = args.database_url or f"sqlite:///{tmpdir / 'bench.sqlite3'}"
        engine = re.split(r"[:+]", database_url, maxsplit=1)[0]
        env = app_env(database_url, args.redis_url, most_streams=max(args.client_counts))
        print(
            f"bench/stream.py: database {engine}, "
            f"channel layer {'redis' if args.redis_url else 'in-memory'}, "
            f"simulator ttft {args.ttft_ms} ms, {args.tps:g} tok/s, {args.tokens} tokens"
        )
        if app_overrides():
            print(f"  app settings from the environment: {app_overrides()}")
        print("  migrating ...", flush=True)
        session = prepared_session(env)

        sim_args = ("--ttft-ms", str(args.ttft_ms), "--tps", str(args.tps))
        sim_args += ("--reply-tokens", str(args.tokens))
        with run_simulator(*sim_args, env=env) as simulator:
            sim_pid = simulator.pid
            served_env = {**env, "AI_BASE_URL": simulator.base_url}
            with ExitStack() as stack:
                servers = [
                    stack.enter_context(run_app_server(env=served_env, log_dir=tmpdir))
                    for _ in range(args.processes)
                ]
                peers = run_peers(args, stack, simulator.base_url, tmpdir)
                pids = tuple(server.process.pid for server in servers)
                pid = pids[0] if len(pids) == 1 else pids
                base_url = servers[0].base_url
                if len(servers) > 1:
                    ports = [int(server.base_url.rpartition(":")[2]) for server in servers]
                    base_url = stack.enter_context(run_front(ports, tmpdir))
                    print(f"  nginx at {base_url} in front of {len(servers)} daphne processes")
                for server in servers:
                    print(f"  daphne pid {server.process.pid} at {server.base_url}")
                print(f"  simulator pid {sim_pid}")
                for name, proxy in peers.items():
                    print(f"  {name} pid {proxy.pid} at {proxy.base_url}")
                try:
                    rounds, title = asyncio.run(
                        bench(args, base_url, session, pid, simulator.base_url, sim_pid, peers)
                    )
                except BaseException:
                    for server in servers:
                        print(f"\ndaphne log (tail):\n{log_tail(server.log_path)}", file=sys.stderr)
                    raise
                problems: dict[str, int] = {}
                for server in servers:
                    for key, number in log_problems(server.log_path).items():
                        problems[key] = problems.get(key, 0) + number

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
            "litellm": args.litellm or None,
            "floor": args.floor,
            "processes": args.processes,
            "flow": "two requests" if args.two_requests else "one request",
        },
        "git": git_state(),
        "rounds": [
            {**r, "direct": jsonable(r["direct"]), "app": jsonable(r["app"])} for r in rounds
        ],
    }
    result["targets"] = [
        {"target": name, "pass": ok, "measured": measured} for name, ok, measured in targets(result)
    ]
    result["title"] = title
    result["app_log_problems"] = problems
    result["disturbed"] = disturbed(result)

    m = result["machine"]
    print()
    print(
        f"{m['nproc']} CPUs ({m['cpu_model']}), Python {m['python']}; "
        f"database {engine}, channel layer {result['config']['channel_layer']}; "
        f"simulator {args.ttft_ms} ms TTFT, {args.tps:g} tok/s, {args.tokens} tokens/reply"
        + (f"; starts spread over {args.spread:g} s" if args.spread else "; starts at once")
        + (
            "; two requests per reply (202, GET)"
            if args.two_requests
            else "; one request per reply"
        )
    )
    print(table(result))
    if title is not None:
        print(
            f"\ntitle call, daphne CPU per first reply ({title['replies']} each, one at a time): "
            f"{title['cpu_s_per_reply_with_title'] * 1000:.1f} ms with it, "
            f"{title['cpu_s_per_reply_without_title'] * 1000:.1f} ms without: "
            f"the title costs {title['title_cpu_s'] * 1000:.1f} ms"
        )
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
