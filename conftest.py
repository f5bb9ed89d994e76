"""Suite-wide set-up: test settings come from the environment, like every deployment."""

import os

import django
import pytest

# The suite runs with production-like settings; the keys below exist only for tests.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiproject.settings")
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-deployment-0123456789abcdef")
os.environ.setdefault("AI_API_KEY", "sk-test-simulator-key")
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("LOG_FORMAT", "json")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("SESSION_COOKIE_SECURE", "false")
os.environ.setdefault("CSRF_COOKIE_SECURE", "false")
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
# Hashing passwords with PBKDF2 was over half the suite's time; MD5 is for tests only (a
# served test process inherits this environment).
os.environ.setdefault("PASSWORD_HASHERS", "django.contrib.auth.hashers.MD5PasswordHasher")
# Channel-layer and cache keys of this run stay apart from any other run sharing the Redis.
os.environ.setdefault("CHANNEL_LAYER_PREFIX", f"test{os.getpid()}")

# No per-user limits unless a test sets them (the quota tests do, with settings or UsageQuota rows).
for _limit in ("REQUESTS_PER_MINUTE", "TOKENS_PER_DAY", "COST_PER_DAY_USD", "COST_PER_MONTH_USD"):
    os.environ.setdefault(f"QUOTA_{_limit}", "none")

# Set Django up here, after the environment above (pytest-django would read settings earlier).
django.setup()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    """Before a test's fixtures are torn down (its database emptied among them), wait until no
    served app process still generates a reply: its last writes (the stored end, the title call
    after a first exchange, their AI-call records) land in this test, not in the next one's
    rows, and never meet the flush (a TRUNCATE deadlocks with them on PostgreSQL)."""
    from devtools.live import wait_until_all_idle

    try:
        wait_until_all_idle()
    except AssertionError as exc:
        still_running = exc
    else:
        still_running = None
    result = yield  # the fixtures are torn down in any case
    if still_running is not None:
        raise still_running
    return result


@pytest.fixture(autouse=True)
def _fresh_local_caches():
    """Per-process caches (aiproject.localcache) start empty: a rolled-back test's rows must
    not be served to the next test (a rollback sends no signals)."""
    from core.localcache import clear_all

    clear_all()
    yield
    clear_all()


@pytest.fixture(scope="session")
def simulator():
    """One LLM simulator process for the session (fast: 50 ms to first token, 200 tokens/s).

    Tests that read ``simulator.requests()`` call ``simulator.clear()`` first.
    """
    from devtools.simulator_process import run_simulator

    with run_simulator("--ttft-ms", "50", "--tps", "200") as running:
        yield running


@pytest.fixture(scope="session")
def app_server(django_db_setup, django_db_blocker, simulator, tmp_path_factory):
    """One daphne process serving the app against the test database and the simulator."""
    from devtools.live import app_env, run_app_server

    with django_db_blocker.unblock():
        env = app_env(simulator)
    with run_app_server(env=env, log_dir=tmp_path_factory.mktemp("daphne")) as server:
        yield server


@pytest.fixture
def user(transactional_db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("alice", password="correct-horse-battery")


@pytest.fixture
def other_user(transactional_db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("mallory", password="correct-horse-battery")


def _retry_flush_on_deadlock():
    """Transactional tests end with a flush (TRUNCATE of every table). A served app process may
    still be writing then (a title call after the test's last reply, its AI-call record), and on
    PostgreSQL the TRUNCATE can deadlock with that transaction; PostgreSQL aborts one of the two.
    Retry the flush then, instead of failing this test and the next one (its rows left behind)."""
    import time

    from django.core.management.base import CommandError
    from django.test import TransactionTestCase

    original = TransactionTestCase._fixture_teardown

    def fixture_teardown(self):
        for attempt in range(4):
            try:
                return original(self)
            except CommandError as exc:
                if "deadlock" not in str(exc.__cause__) or attempt == 3:
                    raise
                time.sleep(0.2 * (attempt + 1))

    TransactionTestCase._fixture_teardown = fixture_teardown


_retry_flush_on_deadlock()
