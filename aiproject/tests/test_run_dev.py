"""`make run`'s script on the default path: SQLite, in-memory layer, the simulator and the
monitor, its development .env, then Ctrl-C."""

import os
import re
import signal
import sqlite3
import stat
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


def newcomer_env(tmp_path: Path) -> dict[str, str]:
    """A newcomer's environment: none of the suite's settings; SQLite and .env in tmp_path."""
    drop = {
        "DATABASE_URL",
        "REDIS_URL",
        "AI_API_KEY",
        "AI_BASE_URL",
        "DEBUG",
        "SECRET_KEY",
        "ENV_FILE",
        "CHAT_DRAIN_SECONDS",
        "ANALYTICS_ROLLUP_SECONDS",
        "MONITOR_INTERVAL_SECONDS",
    }
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("QUOTA_")}
    return env | {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'dev.sqlite3'}",
        # The file `make run` writes (.env beside manage.py for a newcomer).
        "ENV_FILE": str(tmp_path / ".env"),
    }


def group_members(pgid: int) -> dict[int, str]:
    """The live processes of a process group: {pid: command line}."""
    members = {}
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
            cmdline = (status.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # exited meanwhile
        if int(fields[2]) == pgid and fields[0] != "Z":
            members[int(status.parent.name)] = cmdline
    return members


def monitor_pids(process: subprocess.Popen) -> list[int]:
    return [pid for pid, cmd in group_members(process.pid).items() if "manage.py monitor" in cmd]


@contextmanager
def run_dev(tmp_path: Path, **extra_env: str):
    """Start scripts/run-dev.sh in its own process group; yield (process, base URL, log)."""
    port, simulator_port = free_port(), free_port()
    env = newcomer_env(tmp_path) | {
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
        if process.poll() is None or group_members(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    # Nothing it started is left running, or listening.
    assert not group_members(process.pid), log.read_text()
    for listening_port in (port, simulator_port):
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{listening_port}/", timeout=1)


@contextmanager
def demo_client(base: str, username: str = "demo"):
    with httpx.Client(base_url=base, timeout=30) as client:
        client.get("/accounts/login/")
        token = client.cookies["csrftoken"]
        response = client.post(
            "/accounts/login/",
            data={"username": username, "password": username, "csrfmiddlewaretoken": token},
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


def stream_to_the_end(client: httpx.Client, content: str) -> dict:
    started = post_message(client, content)
    with client.stream("GET", started["stream_url"]) as stream:
        events = [e for e in iter_sse(stream) if not isinstance(e, str)]
    assert events[-1].event == "done", events[-3:]
    return started


def calls_rolled_up_for(database: Path, username: str) -> int:
    """The user's calls in the rollups the dashboard reads (UserDailyUsage: its top users)."""
    with sqlite3.connect(database) as db:
        (calls,) = db.execute(
            "SELECT COALESCE(SUM(u.calls), 0) FROM analytics_userdailyusage u "
            "JOIN auth_user a ON a.id = u.user_id WHERE a.username = ?",
            (username,),
        ).fetchone()
    return calls


# A monitor pass every second, rollups every second: the dashboard trails by a second or two.
FAST_MONITOR = {"MONITOR_INTERVAL_SECONDS": "1", "ANALYTICS_ROLLUP_SECONDS": "1"}


def test_run_dev_serves_a_streaming_chat_and_stops_on_ctrl_c(tmp_path):
    database = tmp_path / "dev.sqlite3"
    with run_dev(tmp_path, **FAST_MONITOR) as (process, base, log):
        output = log.read_text()
        assert "Demo login: username 'demo', password 'demo' (a superuser" in output
        assert "Demo login: username 'alice', password 'alice' (an ordinary user" in output
        assert "starting the built-in simulator" in output
        assert "Wrote a development" in output
        (monitor,) = monitor_pids(process)

        with demo_client(base) as client:
            page = client.get("/")
            assert "built-in simulator" in page.text and "Welcome (demo)" in page.text
            assert 'class="quota-meter' not in page.text  # a superuser has no quotas
            started = post_message(client, "Hello from the smoke test")
            with client.stream("GET", started["stream_url"]) as stream:
                events = [e for e in iter_sse(stream) if not isinstance(e, str)]
                deltas = [e for e in events if e.event == "delta"]
                assert len(deltas) > 5
                assert events[-1].event == "done"

        # An ordinary user's chat reaches the staff dashboard's rollups through the monitor.
        with demo_client(base, "alice") as client:
            page = client.get("/")
            assert 'class="quota-meter' in page.text and "tokens left today" in page.text
            assert calls_rolled_up_for(database, "alice") == 0
            stream_to_the_end(client, "Hello from alice")
            chatted = time.monotonic()
        while calls_rolled_up_for(database, "alice") < 1:
            assert time.monotonic() - chatted < 30, "the monitor never rolled up alice's chat"
            time.sleep(0.2)
        ctrl_c(process)
        process.wait(timeout=15)
        assert monitor not in group_members(process.pid)

    # The development .env: written once, private, and enough for manage.py on its own.
    env_file = tmp_path / ".env"
    written = env_file.read_text()
    assert written.startswith("# For development only")
    assert "\nDEBUG=true\n" in written
    secret_key = re.search(r"^SECRET_KEY=(\S+)$", written, re.MULTILINE)
    assert secret_key and len(secret_key[1]) >= 50
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    report = manage("cost_report", env=newcomer_env(tmp_path))
    assert report.returncode == 0 and "AI cost report for" in report.stdout, report.stderr
    # Without it (production: DEBUG off, no secrets) the same command refuses to start.
    (tmp_path / "empty.env").write_text("")
    refused = manage(
        "cost_report", env=newcomer_env(tmp_path) | {"ENV_FILE": str(tmp_path / "empty.env")}
    )
    assert refused.returncode != 0 and "SECRET_KEY is not set" in refused.stderr

    # The second start keeps the file as it is.
    with run_dev(tmp_path, **FAST_MONITOR) as (process, base, log):
        assert "Wrote a development" not in log.read_text()
        assert env_file.read_text() == written
        ctrl_c(process)
        process.wait(timeout=15)


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_PYTHON), "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_second_ctrl_c_stops_the_replies_in_progress_at_once(tmp_path):
    with run_dev(tmp_path, CHAT_DRAIN_SECONDS="120") as (process, base, log):
        monitors = monitor_pids(process)
        assert len(monitors) == 1
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
            # The server drains first; the rest (simulator, monitor) stop after it.
            assert monitor_pids(process) == monitors
        ctrl_c(process)
        process.wait(timeout=20)
        assert "Ctrl-C again to stop them now" in log.read_text()
        assert not monitor_pids(process)
    with sqlite3.connect(tmp_path / "dev.sqlite3") as db:
        (status,) = db.execute(
            "SELECT status FROM chat_message WHERE id = ?",
            (started["assistant_message"]["id"],),
        ).fetchone()
    assert status == "interrupted"
