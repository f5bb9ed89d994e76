"""The CPU of one POST, in process: sequential posts through the ASGI application, no server.

Run from the repository root, against a migrated PostgreSQL database of your own and Redis::

    .venv/bin/python bench/post_cpu.py --database-url postgres://postgres@127.0.0.1:5432/bench_stream \\
        --redis-url redis://127.0.0.1:6379/3 [--posts 200] [--users 60]

It starts the simulator, then drives the real ASGI application (``aiproject.asgi``: the
handler, the middleware, the views) in this process with asgiref's ``ApplicationCommunicator``,
as an ASGI server would. Each post asks for its reply's stream in its own response (``Accept:
text/event-stream``, the chat page's flow) and goes to a new titled conversation (the rounds
of ``bench/stream.py``); the number is the process's CPU from sending the post to receiving
its ``accepted`` event (authentication, the conversation, admission, the two inserts and the
commit, the runner's upstream request and the first bytes of the response), the thing a burst
of posts queues behind on one process (docs/performance.md). Each reply is read to its end
before the next post. ``--users N`` posts as N users in turn: with 60, each posts every 8 s
or so, less often than the per-process caches keep a user's limits (``CONFIG_CACHE_SECONDS``),
so every post reads them, as most users' posts do; with 1 (the default, as ``bench/stream.py``'s
one session) they are cached. There is no daphne or Twisted here, so the absolute numbers are below
``bench/stream.py``'s; compare two commits by running this on each, alternated. Nothing is
asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.stream_bench.setup import app_env  # noqa: E402
from bench.stream_objects import Client as AsgiClient  # noqa: E402
from devtools.processes import free_port  # noqa: E402

# The simulator answers at once, five tokens: the reply ends before the next post.
CONTENT = "Explain back-pressure briefly [sim:ttft=5,tokens=5]"


def settings_env(simulator_port: int, database_url: str, redis_url: str) -> dict:
    """The streaming benches' settings (every quota active, never reached), on this simulator."""
    env = app_env(database_url, redis_url, most_streams=1)
    return env | {
        "CHANNEL_LAYER_PREFIX": f"bench-post-cpu-{os.getpid()}",
        "AI_BASE_URL": f"http://127.0.0.1:{simulator_port}/v1",
    }


class Client(AsgiClient):
    """bench/stream_objects.py's requests of one logged-in user, straight into the
    application, with the post this bench times."""

    async def new_conversation(self) -> int:
        return (await self.post("/api/conversations", {"title": "bench"}))["id"]

    async def timed_post(self, conversation: int) -> tuple[float, float]:
        """CPU and wall time (ms) from the post to its ``accepted`` event."""
        from asgiref.testing import ApplicationCommunicator

        path = f"/api/conversations/{conversation}/messages"
        communicator = ApplicationCommunicator(
            self.application, self.scope("POST", path, stream=True)
        )
        body = json.dumps({"content": CONTENT}).encode()
        cpu, wall = time.process_time(), time.perf_counter()
        await communicator.send_input({"type": "http.request", "body": body})
        start = await communicator.receive_output(30)
        first = await communicator.receive_output(30)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if start["status"] != 200 or b"event: accepted" not in first.get("body", b""):
            raise SystemExit(f"the post answered {start['status']}: {first.get('body', b'')!r}")
        while (await communicator.receive_output(30)).get("more_body"):
            pass
        await communicator.wait(5)
        return cpu * 1000, wall * 1000


async def measure(clients: list[Client], posts: int, warmup: int) -> None:
    cpus, walls = [], []
    for number in range(warmup + posts):
        client = clients[number % len(clients)]
        conversation = await client.new_conversation()
        cpu, wall = await client.timed_post(conversation)
        await asyncio.sleep(0.08)  # the reply's final writes land before the next post
        if number >= warmup:
            cpus.append(cpu)
            walls.append(wall)
    deciles = statistics.quantiles(cpus, n=10)
    print(
        f"{posts} posts by {len(clients)} user(s): CPU from the post to its accepted event p50 "
        f"{statistics.median(cpus):.2f} ms (p10 {deciles[0]:.2f}, p90 {deciles[-1]:.2f}); "
        f"wall p50 {statistics.median(walls):.2f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--users", type=int, default=1, help="post as this many users in turn")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", ""))
    args = parser.parse_args()
    if not args.database_url.startswith("postgres"):
        parser.error("give --database-url: a migrated PostgreSQL database of your own")
    simulator_port = free_port()
    simulator = subprocess.Popen(
        [sys.executable, "-m", "devtools.simulator", "--port", str(simulator_port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    try:
        os.environ.update(settings_env(simulator_port, args.database_url, args.redis_url))
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{simulator_port}/v1/models", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test import Client as DjangoClient

        from aiproject.asgi import application

        clients = []
        for number in range(max(args.users, 1)):
            name = "bench-post-cpu" + (f"-{number}" if number else "")
            user, _ = get_user_model().objects.get_or_create(username=name)
            login = DjangoClient()
            login.force_login(user)
            clients.append(Client(application, login.cookies["sessionid"].value))
        connection.close()
        asyncio.run(measure(clients, args.posts, args.warmup))
    finally:
        simulator.terminate()
        simulator.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
