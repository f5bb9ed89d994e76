"""Test support: the app served by real daphne processes, and an SSE client over real HTTP."""

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from django.db import connection

from .processes import answers, managed_process
from .simulator_process import free_port

REPO = Path(__file__).resolve().parents[2]
CSRF_TOKEN = "t" * 32  # an unmasked CSRF secret, valid in both the cookie and the header


def database_url() -> str:
    """Return a DATABASE_URL naming the test database this pytest process created."""
    s = connection.settings_dict
    if s["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{s['NAME']}"
    user = s.get("USER") or "postgres"
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{s['NAME']}"


def app_env(simulator, **overrides) -> dict[str, str]:
    """Environment of a served app process: the test database, the simulator, short timings."""
    env = {
        "DATABASE_URL": database_url(),
        "AI_BASE_URL": simulator.base_url,
        "AI_API_KEY": "sk-test-simulator-key",
        "AI_MODEL": "gpt-4o-mini",
        "CHAT_PERSIST_INTERVAL_SECONDS": "0.2",
        "AI_RETRY_BASE_DELAY_SECONDS": "0.05",
        "AI_STREAM_IDLE_TIMEOUT_SECONDS": "1.5",
        "CHAT_STALE_AFTER_SECONDS": "5",
        "SSE_PING_SECONDS": "15",
        "LOG_LEVEL": "INFO",
        "SERVE_STATIC": "true",
        # Tests change quotas and prices under a running server, from the pytest process: the
        # server must not keep them (aiproject.localcache; its own tests cover the cache).
        "CONFIG_CACHE_SECONDS": "0",
        # A server stopped at the end of a test lets its replies finish for this long (not 60 s;
        # chat/tests/test_drain.py sets its own).
        "CHAT_DRAIN_SECONDS": "3",
    }
    env.update(overrides)
    return env


@dataclass
class AppServer:
    base_url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def run_app_server(*, env: dict[str, str], log_dir: Path, port: int | None = None):
    """Serve aiproject.asgi with daphne in a child process until the block ends."""
    port = port or free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = log_dir / f"daphne-{port}.log"
    args = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    with managed_process(
        [*args, "aiproject.asgi:application"],
        log_path=log_path,
        ready=answers(f"{base_url}/accounts/login/"),
        what="daphne",
        env={**os.environ, **env},
    ) as process:
        yield AppServer(base_url, process, log_path)


def login_cookies(user) -> dict[str, str]:
    """Return cookies of a logged-in session for ``user`` (stored in the shared database)."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return {"sessionid": client.cookies["sessionid"].value, "csrftoken": CSRF_TOKEN}


def api_client(server: AppServer, user, **kwargs) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url,
        cookies=kwargs.pop("cookies", None) or login_cookies(user),
        headers={"X-CSRFToken": CSRF_TOKEN},
        timeout=kwargs.pop("timeout", 30),
        **kwargs,
    )


@dataclass
class SSEEvent:
    event: str
    data: dict | None
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


class SSEDecoder:
    """Turn the lines of an SSE stream into SSEEvent objects and comment strings."""

    def __init__(self):
        self.event, self.data, self.id = "message", [], None

    def feed(self, line: str) -> SSEEvent | str | None:
        """Take one line; return a finished event, a comment, or None."""
        if line == "":
            item = (
                SSEEvent(self.event, json.loads("\n".join(self.data)), self.id)
                if self.data
                else None
            )
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


def iter_sse(response: httpx.Response):
    """Yield SSEEvent objects and comment strings from a streaming httpx response."""
    decoder = SSEDecoder()
    for line in response.iter_lines():
        item = decoder.feed(line)
        if item is not None:
            yield item


async def aiter_sse(response: httpx.Response):
    """The same, from an ``httpx.AsyncClient`` streaming response."""
    decoder = SSEDecoder()
    async for line in response.aiter_lines():
        item = decoder.feed(line)
        if item is not None:
            yield item


def read_stream(
    client: httpx.Client,
    url: str,
    *,
    last_event_id: str | None = None,
    stop_after_deltas: int | None = None,
    on_delta=None,
    timeout: float = 30,
) -> SSEResult:
    """Read an SSE stream to its final event (or until ``stop_after_deltas`` deltas)."""
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    events: list[SSEEvent] = []
    comments: list[str] = []
    with client.stream("GET", url, headers=headers, timeout=timeout) as response:
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
