"""`make run`'s script on the default path: SQLite, in-memory layer, the simulator, then Ctrl-C."""

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from chat.tests.live import iter_sse
from chat.tests.simulator_process import free_port

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "run-dev.sh"
VENV_PYTHON = REPO / ".venv" / "bin" / "python"


@pytest.mark.skipif(not VENV_PYTHON.exists(), reason="needs the project's .venv (make install)")
def test_run_dev_serves_a_streaming_chat_and_stops_on_ctrl_c(tmp_path):
    port, simulator_port = free_port(), free_port()
    drop = {
        "DATABASE_URL",
        "REDIS_URL",
        "AI_API_KEY",
        "AI_BASE_URL",
        "DEBUG",
        "SECRET_KEY",
        "ENV_FILE",
    }
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env |= {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'dev.sqlite3'}",
        "PORT": str(port),
        "SIMULATOR_PORT": str(simulator_port),
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
        output = log.read_text()
        assert "Demo login: username 'demo', password 'demo'" in output
        assert "starting the built-in simulator" in output

        with httpx.Client(base_url=base, timeout=30) as client:
            client.get("/accounts/login/")
            token = client.cookies["csrftoken"]
            response = client.post(
                "/accounts/login/",
                data={"username": "demo", "password": "demo", "csrfmiddlewaretoken": token},
            )
            assert response.status_code == 302, response.text
            headers = {"X-CSRFToken": client.cookies["csrftoken"]}
            page = client.get("/")
            assert "built-in simulator" in page.text and "Welcome (demo)" in page.text
            conversation = client.post("/api/conversations", json={}, headers=headers).json()
            started = client.post(
                f"/api/conversations/{conversation['id']}/messages",
                json={"content": "Hello from the smoke test"},
                headers=headers,
            ).json()
            with client.stream("GET", started["stream_url"]) as stream:
                events = [e for e in iter_sse(stream) if not isinstance(e, str)]
                deltas = [e for e in events if e.event == "delta"]
                assert len(deltas) > 5
                assert events[-1].event == "done"
    finally:
        # Ctrl-C goes to the whole foreground process group, as in a terminal.
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    # Nothing it started is left listening.
    for listening_port in (port, simulator_port):
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{listening_port}/", timeout=1)
