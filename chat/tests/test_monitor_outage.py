"""``manage.py monitor`` as a real process through a restart of its own PostgreSQL: it logs the
outage once, stops its heartbeat, and sweeps a stale reply within a pass of the return."""

import os
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from django.core.management import call_command
from django.test import override_settings

from devtools.processes import free_port, managed_process

from .services_process import manage, migrate, postgres_server

pytestmark = pytest.mark.fault

# A reply being written (no heartbeat yet: the sweeper leaves it alone until the test makes it
# stale, after the restart).
REPLY = """
from django.contrib.auth import get_user_model
from chat.models import Conversation, Message
user = get_user_model().objects.create(username="monitored")
conversation = Conversation.objects.create(user=user, title="t")
reply = Message.objects.create(conversation=conversation, role="assistant", status="streaming")
print("reply", reply.pk)
"""


def monitor_process(env: dict[str, str], log_path: Path):
    return managed_process(
        [sys.executable, "manage.py", "monitor", "--interval", "0.3"],
        log_path=log_path,
        ready=lambda: True,  # the test waits for what it checks
        what="monitor",
        env={**os.environ, **env},
    )


def wait_for(check, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return result


def sql(database_url: str, statement: str, *params):
    with psycopg.connect(database_url, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchone() if cursor.description else None


def metrics(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text


def check_heartbeat(path: Path, max_age: float) -> int:
    """``manage.py monitor --check-heartbeat --max-age S``: its exit status."""
    with override_settings(MONITOR_HEARTBEAT_FILE=str(path)), pytest.raises(SystemExit) as done:
        call_command("monitor", "--check-heartbeat", "--max-age", str(max_age))
    return done.value.code


def test_the_monitor_recovers_after_a_database_restart(tmp_path):
    heartbeat = tmp_path / "heartbeat"
    log_path = tmp_path / "monitor.log"
    with postgres_server() as pg:
        migrate(pg.url)
        metrics_port = free_port()
        env = {
            "MONITOR_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}",
            "DATABASE_URL": pg.url,
            "MONITOR_HEARTBEAT_FILE": str(heartbeat),
            "CHAT_STALE_AFTER_SECONDS": "1",
            "LOG_FORMAT": "console",
            "LOG_LEVEL": "INFO",
        }
        reply_id = int(manage(pg.url, "shell", "-c", REPLY).split("reply")[-1])
        assert check_heartbeat(heartbeat, 60) == 1  # no pass yet
        with monitor_process(env, log_path) as monitor:
            wait_for(heartbeat.exists, timeout=30, what="the first heartbeat")
            assert check_heartbeat(heartbeat, 60) == 0

            pg.stop("fast")
            time.sleep(0.5)  # a pass that started before the stop may still write
            beat = heartbeat.stat().st_mtime
            time.sleep(3)  # about ten passes with the database down
            assert heartbeat.stat().st_mtime == beat, "a failed pass wrote the heartbeat"
            assert check_heartbeat(heartbeat, 2) == 1
            assert 'aiproject_dependency_up{dependency="database"} 0.0' in metrics(metrics_port)
            assert monitor.poll() is None

            pg.start()
            stale = (
                "UPDATE chat_message SET heartbeat_at = now() - interval '5 minutes' WHERE id = %s"
            )
            sql(pg.url, stale, reply_id)
            wait_for(
                lambda: (
                    sql(pg.url, "SELECT status FROM chat_message WHERE id = %s", reply_id)
                    == ("interrupted",)
                ),
                timeout=20,
                what="the monitor to sweep the stale reply after the restart",
            )
            wait_for(lambda: heartbeat.stat().st_mtime > beat, timeout=10, what="a new heartbeat")
            assert check_heartbeat(heartbeat, 5) == 0
            assert 'aiproject_dependency_up{dependency="database"} 1.0' in metrics(metrics_port)
    log = log_path.read_text()
    # One warning for the whole outage and one line at its end, not a traceback per job per pass.
    assert log.count("database unavailable since") == 1, log
    assert log.count("database available again after") == 1, log
    assert "Traceback" not in log, log
