"""Production as the container runs it: DEBUG off, settings from an env file, PostgreSQL and
Redis, migrate + collectstatic + check --deploy, daphne behind the project's nginx.conf."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from django.db import connection

from chat.tests.services_process import missing_tools, redis_server
from devtools.processes import free_port
from devtools.sse import iter_sse

from .nginx_process import NGINX, REPO, render_conf, run_nginx, trust_front_proxy

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="the production smoke test needs PostgreSQL"
    ),
    pytest.mark.skipif(bool(missing_tools(postgres=False)), reason="needs redis-server"),
    pytest.mark.skipif(NGINX is None, reason="needs nginx"),
]


@pytest.fixture
def smoke_redis():
    """A redis-server of the test's own (no persistence), which it stops and starts again."""
    with redis_server(aof=False) as server:
        yield server


@pytest.fixture
def smoke_database():
    """A fresh, empty PostgreSQL database for a real `migrate`."""
    s = connection.settings_dict
    name = f"smoke_{uuid.uuid4().hex[:10]}"
    dsn = (
        f"host={s['HOST'] or '127.0.0.1'} port={s['PORT'] or 5432} user={s['USER']} dbname=postgres"
    )
    if s.get("PASSWORD"):
        dsn += f" password={s['PASSWORD']}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    yield f"postgres://{s['USER']}{password}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{name}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_production_smoke(smoke_database, smoke_redis, simulator, tmp_path):
    app_port = free_port()
    # nginx's workers run as an unprivileged user: the static files must be readable to them,
    # which pytest's private tmp_path is not.
    static_parent = Path(tempfile.mkdtemp(prefix="smoke-static-"))
    static_parent.chmod(0o755)
    static_root = static_parent / "staticfiles"
    env_file = tmp_path / ".env.production"
    env_file.write_text(
        "\n".join(
            [
                "DEBUG=false",
                "SECRET_KEY=smoke-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFG",
                "AI_API_KEY=sk-smoke-key-never-shown",
                f"AI_BASE_URL={simulator.base_url}",
                f"DATABASE_URL={smoke_database}",
                f"REDIS_URL={smoke_redis.url}",
                "ALLOWED_HOSTS=127.0.0.1,localhost",
                f"STATIC_ROOT={static_root}",
                "CHANNEL_LAYER_PREFIX=smoke",
                "LOG_LEVEL=WARNING",
            ]
        )
        + "\n"
    )
    # Only what a container gets: its env file. Nothing from the test suite's environment.
    keep = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"}
    env = {k: v for k, v in os.environ.items() if k in keep} | {"ENV_FILE": str(env_file)}

    def manage(*args):
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, (
            f"manage.py {' '.join(args)}:\n{result.stdout}{result.stderr}"
        )
        return result.stdout

    manage("migrate", "--noinput")
    manage("collectstatic", "--noinput")
    assert "no issues" in manage("check", "--deploy", "--fail-level", "WARNING")
    manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model as m; "
        "m().objects.create_user('smoke', password='smoke-password-1234')",
    )
    log = open(tmp_path / "daphne.log", "wb")  # noqa: SIM115
    daphne = subprocess.Popen(
        # The Dockerfile's command, on a free port.
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(app_port),
            "--proxy-headers",
            "--application-close-timeout",
            "10",
            "aiproject.asgi:application",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    nginx_port = free_port()
    conf = render_conf(
        upstream=f"127.0.0.1:{app_port}",
        listen=f"127.0.0.1:{nginx_port}",
        static_root=static_root,
    )
    # The client below plays the TLS terminator in front of nginx.
    conf = trust_front_proxy(conf, "127.0.0.1")
    try:
        with run_nginx(conf, tmp_path, nginx_port) as base:
            origin = f"https://127.0.0.1:{nginx_port}"
            # What a TLS terminator in front of nginx adds.
            https = {"X-Forwarded-Proto": "https", "Origin": origin, "Referer": origin + "/"}
            with httpx.Client(base_url=base, headers=https, timeout=30) as client:
                deadline = time.monotonic() + 30
                while client.get("/healthz").status_code != 200:
                    assert time.monotonic() < deadline, (tmp_path / "daphne.log").read_text()
                    time.sleep(0.2)
                assert client.get("/readyz").status_code == 200
                # Plain HTTP is redirected to HTTPS.
                plain = httpx.get(f"{base}/accounts/login/")
                assert plain.status_code == 301
                assert plain.headers["location"].startswith("https://")
                static = client.get("/static/chat/chat.js")
                assert static.status_code == 200 and static.headers["cache-control"] == "no-cache"

                login_page = client.get("/accounts/login/")
                assert login_page.status_code == 200
                assert "Secure" in login_page.headers["set-cookie"]
                csrf = login_page.cookies["csrftoken"]
                login = client.post(
                    "/accounts/login/",
                    data={
                        "username": "smoke",
                        "password": "smoke-password-1234",
                        "csrfmiddlewaretoken": csrf,
                    },
                    headers={"Cookie": f"csrftoken={csrf}"},
                )
                assert login.status_code == 302, login.text
                session = login.cookies["sessionid"]
                cookie = {
                    "Cookie": f"csrftoken={csrf}; sessionid={session}",
                    "X-CSRFToken": csrf,
                }
                created = client.post("/api/conversations", json={}, headers=cookie)
                assert created.status_code == 201, created.text
                started = client.post(
                    f"/api/conversations/{created.json()['id']}/messages",
                    json={"content": "Smoke test [sim:tokens=60,tps=20]"},
                    headers=cookie,
                ).json()
                with client.stream("GET", started["stream_url"], headers=cookie) as stream:
                    assert stream.headers["content-type"].startswith("text/event-stream")
                    events = [e for e in iter_sse(stream) if not isinstance(e, str)]
                # Streamed in many events; not one per token: a reader that fell behind on a busy
                # machine gets what queued up meanwhile as one (chat/followers.py).
                assert [e.event for e in events].count("delta") >= 15
                assert events[-1].event == "done" and events[-1].data["status"] == "completed"
                page = client.get(created.json()["url"], headers=cookie).text
                assert "sk-smoke-key-never-shown" not in page

                # Redis goes away: not ready, and the failing part is named; back: ready.
                smoke_redis.stop()
                down = client.get("/readyz")
                assert down.status_code == 503
                assert down.json()["failing"] == ["redis"]
                smoke_redis.start()
                deadline = time.monotonic() + 10
                while client.get("/readyz").status_code != 200:
                    assert time.monotonic() < deadline, "not ready after Redis came back"
                    time.sleep(0.2)
    finally:
        daphne.terminate()
        daphne.wait(timeout=15)
        log.close()
        shutil.rmtree(static_parent, ignore_errors=True)
    assert "sk-smoke-key-never-shown" not in (tmp_path / "daphne.log").read_text()
