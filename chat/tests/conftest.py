import pytest

from .live import run_app_server


def app_env(simulator, **overrides) -> dict[str, str]:
    """Environment of a served app process: the test database, the simulator, short timings."""
    from .live import database_url

    env = {
        "DATABASE_URL": database_url(),
        "AI_BASE_URL": simulator.base_url,
        "AI_API_KEY": "sk-test-simulator-key",
        "AI_MODEL": "gpt-4o-mini",
        "CHAT_PERSIST_INTERVAL_SECONDS": "0.2",
        "AI_RETRY_BASE_DELAY_SECONDS": "0.05",
        "AI_STREAM_IDLE_TIMEOUT_SECONDS": "1.5",
        "CHAT_STALE_AFTER_SECONDS": "5",
        "SSE_PING_SECONDS": "15",
        "LOG_LEVEL": "INFO",
        "SERVE_STATIC": "true",
    }
    env.update(overrides)
    return env


@pytest.fixture(scope="session")
def app_server(django_db_setup, django_db_blocker, simulator, tmp_path_factory):
    """One daphne process serving the app against the test database and the simulator."""
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
