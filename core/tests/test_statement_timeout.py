"""DB_STATEMENT_TIMEOUT_SECONDS: a web process's statements are bounded, a job's are not.

A slow statement on a live server is cancelled by PostgreSQL (``statement_timeout``); a server
that does not answer at all is cut by the client at the timeout plus a margin, and trips the
breaker. ``manage.py`` commands run as jobs, bounded by DB_JOB_STATEMENT_TIMEOUT_SECONDS.
"""

import threading
import time

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.test import override_settings
from django.urls import path
from psycopg_pool import ConnectionPool

from aiproject.tests.test_settings import PRODUCTION
from aiproject.tests.test_settings import manage as manage_check
from chat.tests.services_process import manage, missing_tools, postgres_server
from core import postgresql
from core.outages import DATABASE
from core.postgresql.deadline import MARGIN_SECONDS, BoundedConnection, StatementDeadlineExceeded

SLEEP_SQL = "SELECT pg_sleep(%s)"


def slow(request):
    """A request whose statement takes ``sleep`` seconds; ``?silent=1`` plays a server that
    does not answer (its own statement_timeout turned off, so only the client's deadline ends
    it)."""
    with connection.cursor() as cursor:
        if request.GET.get("silent"):
            cursor.execute("SET statement_timeout = 0")
        cursor.execute(SLEEP_SQL, [float(request.GET["sleep"])])
    return JsonResponse({"slept": True})


urlpatterns = [path("api/slow", slow)]

postgres_only = pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "core.postgresql", reason="needs PostgreSQL"
)


@pytest.fixture(autouse=True)
def _web_role():
    """These tests are about a web process's bound: the test process (a job, conftest.py) plays
    one unless a test says otherwise (``limits``)."""
    role = postgresql.is_job()
    postgresql.run_as_job(False)
    yield
    postgresql.run_as_job(role)


@pytest.fixture
def limits(transactional_db):
    """Set this process's role and timeouts; its connections are reopened with them."""
    overrides = []
    role = postgresql.is_job()

    def apply(*, job: bool = False, web: float = 1.0, job_seconds: float = 0.0) -> None:
        override = override_settings(
            DB_STATEMENT_TIMEOUT_SECONDS=web, DB_JOB_STATEMENT_TIMEOUT_SECONDS=job_seconds
        )
        override.enable()
        overrides.append(override)
        postgresql.run_as_job(job)
        _renew_pool()

    yield apply
    for override in overrides:
        override.disable()
    postgresql.run_as_job(role)
    _renew_pool()
    DATABASE.recovered()
    _end_sleepers()


def _renew_pool() -> None:
    connection.close()
    connection.close_pool()  # the pool's connections carry the timeout they were opened with


def _end_sleepers() -> None:
    """End the statements a cut connection left running in the server."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE query LIKE 'SELECT pg_sleep(%%' AND pid <> pg_backend_pid()"
        )


def timed_get(client, url):
    started = time.monotonic()
    response = client.get(url)
    return response, time.monotonic() - started


def assert_database_unavailable(response) -> None:
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "database_unavailable"
    assert response["Retry-After"] == "2"


@postgres_only
@pytest.mark.urls(__name__)
def test_a_request_whose_statement_outruns_the_timeout_gets_a_503_at_the_timeout(limits, client):
    limits(web=1.0)
    response, elapsed = timed_get(client, "/api/slow?sleep=30")
    assert_database_unavailable(response)
    # The server cancelled it at 1 s, not after the 30 s sleep (a bound, not a timing).
    assert 0.9 < elapsed < 10.0, elapsed
    assert not DATABASE.down  # the server answered: not an outage
    assert client.get("/api/slow?sleep=0").status_code == 200


@postgres_only
@pytest.mark.urls(__name__)
def test_a_server_that_does_not_answer_is_cut_at_the_deadline_and_trips_the_breaker(limits, client):
    limits(web=1.0)
    response, elapsed = timed_get(client, "/api/slow?sleep=30&silent=1")
    assert_database_unavailable(response)
    deadline = 1.0 + MARGIN_SECONDS
    assert deadline - 0.1 < elapsed < deadline + 8, elapsed  # cut, not after the 30 s sleep
    assert DATABASE.down  # the next requests are refused at once, until a probe succeeds


@postgres_only
@pytest.mark.urls(__name__)
def test_a_job_is_not_cut_at_the_web_timeout(limits, client):
    limits(job=True, web=0.5, job_seconds=0)
    # Longer than the web's timeout and its margin together.
    response, elapsed = timed_get(client, "/api/slow?sleep=2")
    assert response.status_code == 200, response.content
    assert elapsed >= 2.0
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"  # the server's default: none


@postgres_only
@pytest.mark.urls(__name__)
def test_a_job_has_its_own_timeout_when_one_is_set(limits, client):
    limits(job=True, web=0, job_seconds=1.0)
    response, elapsed = timed_get(client, "/api/slow?sleep=30")
    assert_database_unavailable(response)
    assert 0.9 < elapsed < 10.0, elapsed  # cancelled at 1 s, not after the 30 s sleep
    assert not DATABASE.down  # the server cancelled it, before the client's deadline


@postgres_only
@pytest.mark.django_db
def test_manage_py_commands_run_as_jobs():
    db = connection.settings_dict  # the test database: any database would do for pg_sleep
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    code = (
        "from django.db import connection\n"
        "with connection.cursor() as c:\n"
        "    c.execute('SELECT pg_sleep(2)'); c.execute('SHOW statement_timeout')\n"
        "    print('timeout', c.fetchone()[0])"
    )
    started = time.monotonic()
    output = manage(url, "shell", "-c", code, env={"DB_STATEMENT_TIMEOUT_SECONDS": "0.5"})
    assert "timeout 0" in output
    assert time.monotonic() - started >= 2.0


@pytest.mark.parametrize(
    "name", ["DB_STATEMENT_TIMEOUT_SECONDS", "DB_JOB_STATEMENT_TIMEOUT_SECONDS"]
)
def test_a_negative_statement_timeout_is_refused_by_name(name):
    result = manage_check("check", env={**PRODUCTION, name: "-1"})
    assert result.returncode != 0
    assert f"{name} must be 0 or more, not -1.0." in result.stderr


def while_hung(pg, call, *, give_up: float = 10.0) -> tuple[BaseException | None, float]:
    """Run ``call`` against the paused server; return its error and how long it took. One
    that is still waiting after ``give_up`` seconds is hung: the server is resumed (which ends
    the call) and the test fails, rather than waiting forever."""
    outcome: list[BaseException | None] = []

    def run():
        try:
            call()
        except BaseException as exc:  # handed to the test
            outcome.append(exc)
        else:
            outcome.append(None)

    started = time.monotonic()
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(give_up)
    elapsed = time.monotonic() - started
    if worker.is_alive():
        pg.resume()
        pytest.fail(f"still waiting for the hung server after {give_up} s")
    return outcome[0], elapsed


@pytest.mark.fault
@override_settings(DB_STATEMENT_TIMEOUT_SECONDS=1.0)
def test_a_hung_server_fails_a_statement_and_the_pool_check_at_the_deadline():
    """SIGSTOP: the connections stay open and nothing answers (no error, no reset)."""
    if missing := missing_tools(redis=False):
        pytest.skip("needs " + ", ".join(missing))
    deadline = 1.0 + MARGIN_SECONDS
    with postgres_server() as pg:
        query = BoundedConnection.connect(pg.admin_url(), autocommit=True)
        idle = BoundedConnection.connect(pg.admin_url(), autocommit=True)
        assert query.execute("SELECT 1").fetchone() == (1,)
        pg.pause()
        try:
            error, elapsed = while_hung(pg, lambda: query.execute("SELECT 1"))
            assert isinstance(error, StatementDeadlineExceeded), error
            # Cut at the deadline, not waited out (while_hung gives up at 10 s).
            assert deadline - 0.1 < elapsed < deadline + 5, elapsed
            print(f"\na statement on the hung server failed in {elapsed:.2f} s")
            assert query.broken and query.hung and DATABASE.down
            error, elapsed = while_hung(pg, lambda: ConnectionPool.check_connection(idle))
            assert isinstance(error, psycopg.OperationalError), error  # the pool's check
            assert elapsed < deadline + 5, elapsed
            print(f"the pool's check failed in {elapsed:.2f} s")
            # The breaker's probe: a connection with the connect timeout.
            error, elapsed = while_hung(
                pg, lambda: BoundedConnection.connect(pg.admin_url(), connect_timeout=2)
            )
            assert isinstance(error, psycopg.OperationalError), error
            assert elapsed < 7, elapsed  # connect_timeout=2, not the 10 s give-up
            print(f"a new connection failed in {elapsed:.2f} s")
        finally:
            pg.resume()
            DATABASE.recovered()
        with BoundedConnection.connect(pg.admin_url(), autocommit=True) as fresh:
            assert fresh.execute("SELECT 1").fetchone() == (1,)
