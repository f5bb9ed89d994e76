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

# The test process itself works like a manage.py command: a job, with no statement timeout of
# its own (creating or dropping a test database on a busy server can take longer than a web
# request's 5 s). The app processes it serves are web processes, with the timeout.
from core.postgresql import run_as_job  # noqa: E402

run_as_job()


def _own_prefix_per_worker() -> None:
    """A pytest-xdist worker (PYTEST_XDIST_WORKER=gw0, gw1...) inherits the environment of the
    process that started it, and pytest-django has read the settings before this file runs: give
    the worker, and the servers it starts, a prefix of its own (Redis keys of the channel layer,
    the cache and the quota counters), so that no worker clears another's counters."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return
    from channels.layers import channel_layers
    from django.conf import settings
    from django.core.cache import caches

    prefix = f"{os.environ['CHANNEL_LAYER_PREFIX']}-{worker}"
    os.environ["CHANNEL_LAYER_PREFIX"] = settings.CHANNEL_LAYER_PREFIX = prefix
    if "prefix" in settings.CHANNEL_LAYERS["default"].get("CONFIG", {}):
        settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = prefix
    if "KEY_PREFIX" in settings.CACHES["default"]:
        settings.CACHES["default"]["KEY_PREFIX"] = prefix
    # Nothing has used them yet; drop what their handlers may have read of the settings.
    caches.__dict__.pop("settings", None)
    channel_layers.backends.clear()


_own_prefix_per_worker()


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


# Rows the migrations seed (model prices, alert rules and their channel), as JSON, once the test
# database exists; put back after every flush.
_seeded_rows: list[str] = []


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test databases, and a copy of the rows the migrations seeded in them."""
    from django.apps import apps
    from django.core import serializers

    with django_db_blocker.unblock():
        for model in apps.get_models():
            # Content types and permissions come back by themselves (post_migrate on a flush).
            if model._meta.app_label in ("contenttypes", "auth") or model._meta.proxy:
                continue
            rows = list(model._default_manager.order_by("pk"))
            if rows:
                _seeded_rows.append(serializers.serialize("json", rows))
    yield


def _restore_seeded_rows_after_flush():
    """A transactional test ends with a flush, which empties every table, the rows the
    migrations seeded included: put them back, so every test starts from the migrated database
    whatever ran before it on its worker (pytest-xdist changes the order)."""
    from django.core import serializers
    from django.db import transaction
    from django.test import TransactionTestCase

    original = TransactionTestCase._fixture_teardown

    def fixture_teardown(self):
        original(self)
        with transaction.atomic():
            for text in _seeded_rows:
                for obj in serializers.deserialize("json", text):
                    obj.save()

    TransactionTestCase._fixture_teardown = fixture_teardown


_restore_seeded_rows_after_flush()
