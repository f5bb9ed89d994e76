"""The end of a reply survives a real PostgreSQL outage (a server of the test's own, stopped
while the reply streams and started again): stored completed, with its whole text and one
AICall, once the database is back; the reader got the closing event of what is stored."""

import os
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from devtools.live import CSRF_TOKEN, app_env, run_app_server
from devtools.processes import REPO
from devtools.sse import read_stream

from .services_process import missing_tools, postgres_server

pytestmark = [
    pytest.mark.fault,
    pytest.mark.skipif(bool(missing_tools(redis=False)), reason="needs initdb and pg_ctl"),
]


def _manage(database_url: str, *args: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": database_url, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def wait_until(predicate, timeout: float, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception:  # the server is starting or stopped
            value = None
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")


def _logged_in(base_url: str, username: str, password: str) -> httpx.Client:
    login = httpx.post(
        f"{base_url}/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": CSRF_TOKEN},
        cookies={"csrftoken": CSRF_TOKEN},
        timeout=30,
    )
    assert login.status_code == 302, login.text
    return httpx.Client(
        base_url=base_url,
        timeout=30,
        cookies={"sessionid": login.cookies["sessionid"], "csrftoken": CSRF_TOKEN},
        headers={"X-CSRFToken": CSRF_TOKEN},
    )


def test_end_of_a_reply_is_stored_after_a_database_outage(simulator, tmp_path):
    with postgres_server() as db:
        _manage(
            db.url,
            "shell",
            "-c",
            "from django.core.management import call_command; call_command('migrate', "
            "verbosity=0); from django.contrib.auth import get_user_model; "
            "get_user_model().objects.create_user('olga', password='correct-horse-battery')",
        )
        env = app_env(simulator, DATABASE_URL=db.url, DB_POOL_TIMEOUT_SECONDS="2")
        with (
            run_app_server(env=env, log_dir=tmp_path) as server,
            _logged_in(server.base_url, "olga", "correct-horse-battery") as client,
        ):
            created = client.post("/api/conversations", json={})
            assert created.status_code == 201, created.text
            content = f"Outage {uuid.uuid4().hex[:6]} [sim:tokens=60,tps=20]"
            posted = client.post(
                f"/api/conversations/{created.json()['id']}/messages", json={"content": content}
            )
            assert posted.status_code == 202, posted.text
            reply_id = posted.json()["assistant_message"]["id"]
            stopped = []

            def stop_the_database(delta):
                if not stopped:
                    db.stop("fast")  # while the reply streams: its saves and its end fail
                    stopped.append(True)

            result = read_stream(client, posted.json()["stream_url"], on_delta=stop_the_database)
            # The reader got the end (from the runner's memory), as it will be stored.
            assert stopped and result.final.event == "done", result.final
            assert result.final.data["status"] == "completed"
            db.start()
            # A sweeper that runs as soon as the database is back (its heartbeat is stale):
            # it only starts the grace; the live runner's retried end lands first.
            _manage(db.url, "monitor", "--once", CHAT_STALE_AFTER_SECONDS="1")
            row = wait_until(
                lambda: db.query(
                    "SELECT status, content FROM chat_message WHERE id = %s AND status <> "
                    "'streaming'",
                    (reply_id,),
                ),
                timeout=60,
            )[0]
            calls = db.query(
                "SELECT status, attempt FROM analytics_aicall WHERE message_id = %s", (reply_id,)
            )
            log = server.log()
    assert row == ("completed", result.text), log[-3000:]
    assert calls == [("ok", 1)]
