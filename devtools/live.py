"""The app served by real daphne processes, and clients of it (tests and benchmarks)."""

import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from django.db import connection

from devtools.processes import answers, free_port, managed_process

CSRF_TOKEN = "t" * 32  # an unmasked CSRF secret, valid in both the cookie and the header
# The served app's /metrics answers with it (``wait_until_idle`` reads the replies running).
METRICS_TOKEN = "test-metrics-token"  # noqa: S105 (a test-only token)
IDLE_TIMEOUT_SECONDS = 30.0


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
        "METRICS_TOKEN": METRICS_TOKEN,
    }
    env.update(overrides)
    return env


@dataclass
class AppServer:
    base_url: str
    process: subprocess.Popen
    log_path: Path
    metrics_token: str = ""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def replies_running(self) -> int | None:
        """The replies this process generates now (its /metrics), None if it cannot tell."""
        if not self.metrics_token or self.process.poll() is not None:
            return None
        try:
            response = httpx.get(
                f"{self.base_url}/metrics",
                headers={"Authorization": f"Bearer {self.metrics_token}"},
                timeout=5,
            )
        except httpx.TransportError:
            return None
        found = re.search(r"^aiproject_replies_running ([0-9.e+]+)$", response.text, re.M)
        return int(float(found[1])) if response.status_code == 200 and found else None

    def wait_until_idle(self, timeout: float = IDLE_TIMEOUT_SECONDS) -> None:
        """Wait until no reply runs in this process (its title call and stored end included).

        A test's database is emptied when it ends: a reply still writing then would find its
        rows gone, and on PostgreSQL its transaction can deadlock with the TRUNCATE.
        """
        deadline = time.monotonic() + timeout
        while (running := self.replies_running()) and running > 0:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{running} reply(s) still running in the server at {self.base_url} "
                    f"{timeout:.0f} s after the test ended: stop them in the test"
                )
            time.sleep(0.02)


# The app servers running now (the suite drains them after each test: conftest.py).
running_servers: list[AppServer] = []


def wait_until_all_idle() -> None:
    for server in list(running_servers):
        server.wait_until_idle()


@contextmanager
def run_app_server(
    *,
    env: dict[str, str],
    log_dir: Path,
    port: int | None = None,
    application: str = "aiproject.asgi:application",
):
    """Serve ``application`` (the app's, or devtools.counting's) with daphne in a child process
    until the block ends."""
    port = port or free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = log_dir / f"daphne-{port}.log"
    args = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    full_env = {**os.environ, **env}
    with managed_process(
        [*args, application],
        log_path=log_path,
        ready=answers(f"{base_url}/accounts/login/"),
        what="daphne",
        env=full_env,
    ) as process:
        server = AppServer(base_url, process, log_path, full_env.get("METRICS_TOKEN", ""))
        running_servers.append(server)
        try:
            yield server
        finally:
            running_servers.remove(server)


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
