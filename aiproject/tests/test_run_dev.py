"""`make run`'s script on the default path: SQLite, in-memory layer, the simulator, then Ctrl-C."""

import os
import signal
import sqlite3
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from devtools.processes import free_port
from devtools.sse import iter_sse

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "run-dev.sh"
VENV_PYTHON = REPO / ".venv" / "bin" / "python"

pytestmark = pytest.mark.skipif(
    not VENV_PYTHON.exists(), reason="needs the project's .venv (make install)"
)


@contextmanager
def run_dev(tmp_path: Path, **extra_env: str):
    """Start scripts/run-dev.sh in its own process group; yield (process, base URL, log)."""
    port, simulator_port = free_port(), free_port()
    drop = {
        "DATABASE_URL",
        "REDIS_URL",
        "AI_API_KEY",
        "AI_BASE_URL",
        "DEBUG",
        "SECRET_KEY",
        "ENV_FILE",
        "CHAT_DRAIN_SECONDS",
    }
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env |= {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'dev.sqlite3'}",
        "PORT": str(port),
        "SIMULATOR_PORT": str(simulator_port),
        **extra_env,
    }
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            ["bash", str(SCRIPT)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/accounts/login/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield process, base, log
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    # Nothing it started is left listening.
    for listening_port in (port, simulator_port):
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{listening_port}/", timeout=1)


@contextmanager
def demo_client(base: str):
    with httpx.Client(base_url=base, timeout=30) as client:
        client.get("/accounts/login/")
        token = client.cookies["csrftoken"]
        response = client.post(
            "/accounts/login/",
            data={"username": "demo", "password": "demo", "csrfmiddlewaretoken": token},
        )
        assert response.status_code == 302, response.text
        client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
        yield client


def post_message(client: httpx.Client, content: str) -> dict:
    conversation = client.post("/api/conversations", json={}).json()
    return client.post(
        f"/api/conversations/{conversation['id']}/messages", json={"content": content}
    ).json()


def ctrl_c(process: subprocess.Popen) -> None:
    # Ctrl-C goes to the whole foreground process group, as in a terminal.
    os.killpg(process.pid, signal.SIGINT)


def test_run_dev_serves_a_streaming_chat_and_stops_on_ctrl_c(tmp_path):
    with run_dev(tmp_path) as (process, base, log):
        output = log.read_text()
        assert "Demo login: username 'demo', password 'demo'" in output
        assert "starting the built-in simulator" in output

        with demo_client(base) as client:
            page = client.get("/")
            assert "built-in simulator" in page.text and "Welcome (demo)" in page.text
            started = post_message(client, "Hello from the smoke test")
            with client.stream("GET", started["stream_url"]) as stream:
                events = [e for e in iter_sse(stream) if not isinstance(e, str)]
                deltas = [e for e in events if e.event == "delta"]
                assert len(deltas) > 5
                assert events[-1].event == "done"
        ctrl_c(process)
        process.wait(timeout=15)


def test_a_second_ctrl_c_stops_the_replies_in_progress_at_once(tmp_path):
    with run_dev(tmp_path, CHAT_DRAIN_SECONDS="120") as (process, base, log):
        with demo_client(base) as client:
            started = post_message(client, "A long one [sim:tokens=4000,tps=20]")  # 200 s
            with client.stream("GET", started["stream_url"]) as stream:
                for item in iter_sse(stream):
                    if not isinstance(item, str) and item.event == "delta":
                        break
            ctrl_c(process)
            # The first Ctrl-C drains: the server still answers, not ready, the reply running.
            deadline = time.monotonic() + 10
            while client.get("/readyz").status_code != 503:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            time.sleep(1)
            assert process.poll() is None
        ctrl_c(process)
        process.wait(timeout=20)
        assert "Ctrl-C again to stop them now" in log.read_text()
    with sqlite3.connect(tmp_path / "dev.sqlite3") as db:
        (status,) = db.execute(
            "SELECT status FROM chat_message WHERE id = ?",
            (started["assistant_message"]["id"],),
        ).fetchone()
    assert status == "interrupted"
