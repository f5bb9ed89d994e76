"""Idle streams: what N streams of a silent reply cost, on PostgreSQL + Redis.

Run from the repository root, against a migrated database of your own and a Redis database
nobody else uses::

    .venv/bin/python bench/idle_streams.py \\
        --database-url postgres://postgres@127.0.0.1:5432/bench_idle \\
        --redis-url redis://127.0.0.1:6379/3 [--streams 200] [--code-dir DIR]

It starts the simulator (``python -m devtools.simulator``, from this checkout) and two daphne
processes, A and B (from ``--code-dir``, default this checkout: point it at an export of another
commit to compare), posts one message on A whose reply stays silent for a minute (``[sim:ttft=60000]``), then, on B and then on A:

1. opens 5 streams of it and closes them (lazy imports and first connections are not counted);
2. opens N streams of it and holds them (B: N followers of a reply of another process, which wait
   on Redis; A: N followers on the reply's own process);
3. after 4 s, counts over 10 s the database's committed and rolled-back transactions
   (``pg_stat_database``, all processes) and B's or A's reads of the reply's state (the
   ``aiproject_stream_state_reads`` counter, absent before it existed);
4. reports the process's RSS (VmRSS) and thread count before and with the N streams open.

Nothing is asserted. Numbers move by a few KiB per stream between runs on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from devtools.live import CSRF_TOKEN  # noqa: E402
from devtools.processes import free_port  # noqa: E402

METRICS_TOKEN = "bench-idle-streams"


def wait_up(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def proc_status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def transactions(database_url: str) -> int:
    name = database_url.rsplit("/", 1)[1]
    query = f"select xact_commit + xact_rollback from pg_stat_database where datname = '{name}'"
    server = database_url.rsplit("/", 1)[0] + "/postgres"
    return int(subprocess.check_output(["psql", server, "-tAc", query]))


def state_reads(port: int) -> float:
    text = httpx.get(
        f"http://127.0.0.1:{port}/metrics",
        headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
    ).text
    found = re.search(r"^aiproject_stream_state_reads_total ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def hold(client: httpx.AsyncClient, url: str, opened: list, stop: asyncio.Event) -> None:
    async with client.stream("GET", url, headers={"Accept": "text/event-stream"}) as response:
        if response.status_code != 200:
            raise RuntimeError(f"stream answered {response.status_code}")
        opened.append(1)
        async for _ in response.aiter_raw():
            if stop.is_set():
                return


async def open_streams(port: int, cookies: dict, url: str, count: int):
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
    client = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", cookies=cookies, limits=limits, timeout=120
    )
    opened: list = []
    stop = asyncio.Event()
    tasks = [asyncio.create_task(hold(client, url, opened, stop)) for _ in range(count)]
    while len(opened) < count:
        for task in tasks:
            if task.done() and task.exception():
                raise task.exception()
        await asyncio.sleep(0.1)

    async def close():
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()

    return close


async def measure(args, url: str, cookies: dict, processes: dict) -> None:
    for name, (pid, port) in processes.items():
        await asyncio.sleep(2)
        close = await open_streams(port, cookies, url, 5)
        await asyncio.sleep(1)
        await close()
        await asyncio.sleep(2)
        rss_before, threads_before = proc_status(pid, "VmRSS"), proc_status(pid, "Threads")
        close = await open_streams(port, cookies, url, args.streams)
        await asyncio.sleep(4)
        reads_before, xact_before = state_reads(port), transactions(args.database_url)
        started = time.monotonic()
        await asyncio.sleep(10)
        elapsed = time.monotonic() - started
        xact = (transactions(args.database_url) - xact_before) / elapsed
        reads = (state_reads(port) - reads_before) / elapsed
        rss, threads = proc_status(pid, "VmRSS"), proc_status(pid, "Threads")
        print(
            f"{name}: {args.streams} idle streams: {xact:.1f} database transactions/s (all "
            f"processes), {reads:.2f} state reads/s; RSS {rss_before} -> {rss} KiB = "
            f"{(rss - rss_before) / args.streams:.1f} KiB per stream; threads "
            f"{threads_before} -> {threads}",
            flush=True,
        )
        await close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--code-dir", default=str(REPO))
    args = parser.parse_args()
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "CHANNEL_LAYER_PREFIX": f"idle{os.getpid()}",
        "SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnopqrstuv",
        "AI_API_KEY": "sk-test-simulator-key",
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "QUOTA_BACKEND": "database",
        "QUOTA_REQUESTS_PER_MINUTE": "none",
        "QUOTA_TOKENS_PER_DAY": "none",
        "QUOTA_COST_PER_DAY_USD": "none",
        "QUOTA_COST_PER_MONTH_USD": "none",
        "AI_STREAM_IDLE_TIMEOUT_SECONDS": "120",
        "CHAT_MAX_STREAMS_PER_USER": str(args.streams + 10),
        "LOG_LEVEL": "WARNING",
        "METRICS_TOKEN": METRICS_TOKEN,
        "DJANGO_SETTINGS_MODULE": "aiproject.settings",
    }
    simulator_port, a_port, b_port = free_port(), free_port(), free_port()
    env["AI_BASE_URL"] = f"http://127.0.0.1:{simulator_port}/v1"
    logs = Path(tempfile.mkdtemp(prefix="idle-streams-"))
    python = sys.executable
    simulator = [python, "-m", "devtools.simulator", "--port", str(simulator_port)]
    children = [subprocess.Popen(simulator, cwd=REPO, env=env, stdout=subprocess.DEVNULL)]
    for port in (a_port, b_port):
        daphne = [python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
        with open(logs / f"daphne-{port}.log", "wb") as log:
            children.append(
                subprocess.Popen(
                    [*daphne, "aiproject.asgi:application"],
                    cwd=args.code_dir,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        wait_up(f"http://127.0.0.1:{simulator_port}/v1/models")
        for port in (a_port, b_port):
            wait_up(f"http://127.0.0.1:{port}/accounts/login/")
        os.environ.update(env)
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test import Client

        user, _ = get_user_model().objects.get_or_create(username="bench-idle-streams")
        login = Client()
        login.force_login(user)
        cookies = {"sessionid": login.cookies["sessionid"].value, "csrftoken": CSRF_TOKEN}
        connection.close()
        with httpx.Client(
            base_url=f"http://127.0.0.1:{a_port}",
            cookies=cookies,
            headers={"X-CSRFToken": CSRF_TOKEN},
        ) as a:
            conversation = a.post("/api/conversations", json={}).json()["id"]
            posted = a.post(
                f"/api/conversations/{conversation}/messages",
                json={"content": "Silent for a minute [sim:ttft=60000,tokens=3]"},
            ).json()
        processes = {
            "B (followers of a reply of another process)": (children[2].pid, b_port),
            "A (followers on the reply's own process)": (children[1].pid, a_port),
        }
        asyncio.run(measure(args, posted["stream_url"], cookies, processes))
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
