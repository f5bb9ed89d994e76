"""Where an open stream's Python memory goes: tracemalloc over N idle streams, in one process.

Run from the repository root, against a migrated database of your own::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_idle \\
        .venv/bin/python bench/stream_objects.py [--streams 200] [--group-by lineno|filename]

It starts the simulator, then drives the real ASGI application (``aiproject.asgi``: the
handler, the middleware, the stream view) in this process with asgiref's
``ApplicationCommunicator``, as an ASGI server would: it posts one message whose reply stays
silent for a minute, opens 5 streams of it and closes them (first imports), then opens N, and
prints the allocations still held per stream, largest first, and the process's threads.

The channel layer is the in-memory one (REDIS_URL is ignored): the streams follow the reply on
its own process. There is no daphne or Twisted here (bench/idle_streams.py measures the whole
process's RSS under daphne), and the communicator's own two queues per stream (~0.8 KiB)
are counted. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from devtools.live import CSRF_TOKEN  # noqa: E402
from devtools.processes import free_port  # noqa: E402


def settings_env(simulator_port: int, streams: int) -> dict:
    return {
        "AI_BASE_URL": f"http://127.0.0.1:{simulator_port}/v1",
        "AI_API_KEY": "sk-test-simulator-key",
        "SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnopqrstuv",
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "QUOTA_BACKEND": "database",
        "QUOTA_REQUESTS_PER_MINUTE": "none",
        "QUOTA_TOKENS_PER_DAY": "none",
        "QUOTA_COST_PER_DAY_USD": "none",
        "QUOTA_COST_PER_MONTH_USD": "none",
        "AI_STREAM_IDLE_TIMEOUT_SECONDS": "120",
        "CHAT_MAX_STREAMS_PER_USER": str(streams + 10),
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "aiproject.settings",
    }


class Client:
    """ASGI requests of one logged-in user, straight into the application."""

    def __init__(self, application, session_key: str):
        self.application = application
        self.cookie = f"sessionid={session_key}; csrftoken={CSRF_TOKEN}".encode()

    def scope(self, method: str, path: str, *, stream: bool = False) -> dict:
        """``stream``: ask for an event stream (a post then answers with its reply's events
        in its own response, not the 202 JSON)."""
        accept = b"text/event-stream" if stream else b"application/json"
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1"),
                (b"cookie", self.cookie),
                (b"x-csrftoken", CSRF_TOKEN.encode()),
                (b"content-type", b"application/json"),
                (b"accept", accept),
            ],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 80),
        }

    async def post(self, path: str, data: dict) -> dict:
        from asgiref.testing import ApplicationCommunicator

        communicator = ApplicationCommunicator(self.application, self.scope("POST", path))
        await communicator.send_input({"type": "http.request", "body": json.dumps(data).encode()})
        body = b""
        while True:
            message = await communicator.receive_output(30)
            body += message.get("body", b"")
            if message["type"] == "http.response.body" and not message.get("more_body"):
                break
        # The request's end: its thread and its database connection go back (a communicator
        # left before it would keep both).
        await communicator.wait(5)
        return json.loads(body)

    async def open_stream(self, path: str):
        from asgiref.testing import ApplicationCommunicator

        communicator = ApplicationCommunicator(
            self.application, self.scope("GET", path, stream=True)
        )
        await communicator.send_input({"type": "http.request", "body": b""})
        start = await communicator.receive_output(30)
        if start["status"] != 200:
            raise RuntimeError(f"stream answered {start['status']}")
        await communicator.receive_output(30)  # the first comment
        return communicator


async def measure(client: Client, streams: int, group_by: str, top: int) -> None:
    conversation = (await client.post("/api/conversations", {}))["id"]
    posted = await client.post(
        f"/api/conversations/{conversation}/messages",
        {"content": "Silent for a minute [sim:ttft=60000,tokens=3]"},
    )
    url = posted["stream_url"]
    for warm in [await client.open_stream(url) for _ in range(5)]:
        await warm.send_input({"type": "http.disconnect"})
    await asyncio.sleep(1)
    gc.collect()
    tracemalloc.start()
    before, threads_before = tracemalloc.take_snapshot(), threading.active_count()
    opened = [await client.open_stream(url) for _ in range(streams)]
    await asyncio.sleep(2)
    gc.collect()
    after, threads = tracemalloc.take_snapshot(), threading.active_count()
    tracemalloc.stop()
    stats = after.compare_to(before, group_by)
    total = sum(stat.size_diff for stat in stats)
    print(
        f"{streams} idle streams: {total / 1024 / streams:.1f} KiB of Python objects per "
        f"stream; threads {threads_before} -> {threads}"
    )
    for stat in stats[:top]:
        frame = stat.traceback[0]
        where = f"{frame.filename}:{frame.lineno}" if group_by == "lineno" else frame.filename
        print(
            f"{stat.size_diff / streams:8.0f} B {stat.count_diff / streams:6.1f} objects  "
            f"{where.replace(str(REPO) + '/', '')}"
        )
    for communicator in opened:
        await communicator.send_input({"type": "http.disconnect"})
    await asyncio.sleep(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--group-by", choices=["lineno", "filename"], default="lineno")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        parser.error("set DATABASE_URL to a migrated database of your own")
    simulator_port = free_port()
    simulator = subprocess.Popen(
        [sys.executable, "-m", "devtools.simulator", "--port", str(simulator_port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    try:
        os.environ.pop("REDIS_URL", None)
        os.environ.update(settings_env(simulator_port, args.streams))
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{simulator_port}/v1/models", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test import Client as DjangoClient

        from aiproject.asgi import application

        user, _ = get_user_model().objects.get_or_create(username="bench-stream-objects")
        login = DjangoClient()
        login.force_login(user)
        connection.close()
        client = Client(application, login.cookies["sessionid"].value)
        asyncio.run(measure(client, args.streams, args.group_by, args.top))
    finally:
        simulator.terminate()
        simulator.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
