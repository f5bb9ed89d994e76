"""Database outages: a served app answers 503 ``database_unavailable`` at once while its own
PostgreSQL is stopped, and is ready again as soon as it returns; the breaker and the outage log."""

import logging
import time

import httpx
import pytest

from aiproject.tests.test_settings import PRODUCTION
from aiproject.tests.test_settings import manage as manage_check
from chat.tests.services_process import manage, migrate, postgres_server, redis_server
from core.outages import Breaker, DatabaseUnavailable, Outage
from devtools.live import CSRF_TOKEN, api_client, app_env, run_app_server

SESSION = """
from django.contrib.auth import get_user_model
from django.test import Client
from chat.models import Conversation
user = get_user_model().objects.create_user("outage", password="x")
conversation = Conversation.objects.create(user=user, title="t")
client = Client()
client.force_login(user)
print("session", client.cookies["sessionid"].value, conversation.pk)
"""


def timed(call):
    started = time.monotonic()
    response = call()
    return response, round(time.monotonic() - started, 2)


def metrics(client: httpx.Client) -> str:
    response = client.get("/metrics", headers={"Authorization": "Bearer metrics-token"})
    assert response.status_code == 200
    return response.text


def assert_database_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "2"
    assert response.json()["error"] == {
        "code": "database_unavailable",
        "message": "The database is unavailable for a moment. Please try again in a few seconds.",
        "retryable": True,
    }


@pytest.mark.fault
def test_requests_fail_fast_while_the_database_is_down_and_work_when_it_returns(
    simulator, tmp_path
):
    with postgres_server() as pg:
        migrate(pg.url)
        session, conversation = manage(pg.url, "shell", "-c", SESSION).split("session")[1].split()
        env = {
            "DATABASE_URL": pg.url,
            "AI_BASE_URL": simulator.base_url,
            "LOG_LEVEL": "INFO",
            "METRICS_TOKEN": "metrics-token",
        }
        with run_app_server(env=env, log_dir=tmp_path) as server:
            client = httpx.Client(
                base_url=server.base_url,
                cookies={"sessionid": session, "csrftoken": CSRF_TOKEN},
                headers={"X-CSRFToken": CSRF_TOKEN},
                timeout=30,
            )
            post = f"/api/conversations/{conversation}/messages"
            assert client.get("/api/conversations").status_code == 200
            assert 'aiproject_dependency_up{dependency="database"} 1.0' in metrics(client)

            pg.stop("fast")
            timings = {}
            # Each kind twice: the first finds the outage, the second meets the breaker.
            for attempt in (1, 2):
                response, timings[f"POST {attempt}"] = timed(
                    lambda: client.post(post, json={"content": "hello"})
                )
                assert_database_unavailable(response)
                response, timings[f"GET {attempt}"] = timed(
                    lambda: client.get("/api/conversations")
                )
                assert_database_unavailable(response)
            page, timings["page"] = timed(lambda: client.get(f"/c/{conversation}/"))
            assert page.status_code == 503 and "Temporarily unavailable" in page.text
            assert page.headers["Retry-After"] == "2"
            ready, timings["readyz"] = timed(lambda: client.get("/readyz"))
            assert ready.status_code == 503 and ready.json()["failing"] == ["database"]
            print("answered while down (s):", timings)
            assert 'aiproject_dependency_up{dependency="database"} 0.0' in metrics(client)

            pg.start()
            started = time.monotonic()
            deadline = started + 15
            while client.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, "/readyz did not report the recovery"
                time.sleep(0.1)
            print(f"/readyz ready {time.monotonic() - started:.2f} s after the restart")
            assert client.get("/api/conversations").status_code == 200
            assert client.post(post, json={"content": "hello"}).status_code == 202
            assert 'aiproject_dependency_up{dependency="database"} 1.0' in metrics(client)
        log = server.log()
    assert log.count("database unavailable since") == 1, log
    assert log.count("database available again after") == 1, log
    assert "Traceback" not in log, log
    assert "Service Unavailable" not in log, log  # no ERROR line per refused request or probe


def test_an_outage_is_logged_once_with_its_duration(caplog):
    outage = Outage("database")
    with caplog.at_level(logging.INFO, logger="core.outages"):
        assert outage.recovered() is None  # nothing to report
        assert outage.failed(OSError("refused")) is True
        assert outage.failed(OSError("refused")) is False
        assert outage.down
        assert outage.recovered() is not None
        assert outage.recovered() is None
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert messages[0].startswith("database unavailable since ")
    assert "(OSError: refused)" in messages[0]
    assert messages[1].startswith("database available again after ")


def test_the_breaker_refuses_at_once_and_lets_one_probe_through(monkeypatch):
    # The clock is moved on by the test (only forward): a slow machine cannot make a probe due.
    real, ahead = time.monotonic, [0.0]
    monkeypatch.setattr(time, "monotonic", lambda: real() + ahead[0])
    breaker = Breaker(Outage("database"))
    probes = []

    def failing_probe():
        probes.append("failed")
        raise OSError("refused")

    assert breaker.admit(failing_probe, probe_every=60) is False  # up: no probe at all
    breaker.trip(OSError("refused"), probe_every=30)
    with pytest.raises(DatabaseUnavailable):  # before the next probe is due
        breaker.admit(failing_probe, probe_every=30)
    assert probes == []
    ahead[0] += 31
    with pytest.raises(DatabaseUnavailable):  # the probe is due, and fails
        breaker.admit(failing_probe, probe_every=30)
    assert probes == ["failed"]
    with pytest.raises(DatabaseUnavailable):  # the failed probe put the next one off
        breaker.admit(failing_probe, probe_every=30)
    assert probes == ["failed"]
    ahead[0] += 31
    assert breaker.admit(lambda: probes.append("ok"), probe_every=30) is True
    assert probes == ["failed", "ok"]
    assert not breaker.outage.down
    assert breaker.admit(failing_probe, probe_every=0.2) is False


@pytest.mark.parametrize("name", ["DB_CONNECT_TIMEOUT_SECONDS", "DB_OUTAGE_PROBE_SECONDS"])
def test_an_outage_timing_that_is_not_positive_is_refused_by_name(name):
    result = manage_check("check", env={**PRODUCTION, name: "0"})
    assert result.returncode != 0
    assert f"{name} must be a positive number of seconds, not 0.0." in result.stderr


@pytest.mark.fault
@pytest.mark.django_db(transaction=True)
def test_a_post_while_redis_is_down_is_a_503_not_a_500(simulator, user, tmp_path):
    from chat.models import Conversation

    conversation = Conversation.objects.create(user=user)
    # AOF on: a restarted Redis keeps its counters, as a production Redis does.
    with redis_server(aof=True) as redis:
        # A rate limit, so that posting needs Redis (the Redis quota backend).
        env = app_env(simulator, REDIS_URL=redis.url, QUOTA_REQUESTS_PER_MINUTE="100")
        with (
            run_app_server(env=env, log_dir=tmp_path) as server,
            api_client(server, user) as client,
        ):
            post = f"/api/conversations/{conversation.pk}/messages"
            redis.kill()
            response = client.post(post, json={"content": "hello"})
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"] == "2"
            assert response.json()["error"]["code"] == "temporarily_unavailable"
            assert response.json()["error"]["retryable"] is True
            redis.start()
            deadline = time.monotonic() + 15
            while (response := client.post(post, json={"content": "hello"})).status_code == 503:
                assert time.monotonic() < deadline, "posting did not recover with Redis"
                time.sleep(0.2)
            assert response.status_code == 202, response.text
        log = server.log()
    assert log.count("redis unavailable since") == 1, log
    assert log.count("redis available again after") == 1, log


def test_a_full_server_is_busy_not_down():
    import psycopg

    from core.postgresql.base import _server_answered

    full = 'connection to server at "db" failed: FATAL:  sorry, too many clients already'
    assert _server_answered(psycopg.OperationalError(full))
    refused = 'connection to server at "db" failed: Connection refused'
    assert not _server_answered(psycopg.OperationalError(refused))
    stopping = 'connection to server at "db" failed: FATAL:  the database system is shutting down'
    assert not _server_answered(psycopg.OperationalError(stopping))


@pytest.mark.fault
def test_after_a_restart_no_request_noticed_at_most_one_request_fails(simulator, tmp_path):
    with postgres_server() as pg:
        migrate(pg.url)
        session, _ = manage(pg.url, "shell", "-c", SESSION).split("session")[1].split()
        env = {"DATABASE_URL": pg.url, "AI_BASE_URL": simulator.base_url, "DB_POOL_MIN_SIZE": "6"}
        with run_app_server(env=env, log_dir=tmp_path) as server:
            client = httpx.Client(
                base_url=server.base_url, cookies={"sessionid": session}, timeout=30
            )
            for _ in range(3):
                assert client.get("/api/conversations").status_code == 200
            time.sleep(1)  # the pool has opened its six connections
            pg.stop("fast")
            pg.start()  # too quick for any request to notice: the pool's connections broke
            statuses = [client.get("/api/conversations").status_code for _ in range(8)]
    # The first request draws a broken connection (503, retryable); the pool then checks the
    # others at once, instead of handing each to the next request.
    assert statuses.count(200) >= 7, statuses
    assert set(statuses) <= {200, 503}, statuses
