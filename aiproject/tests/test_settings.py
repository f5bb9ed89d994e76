"""Production settings: refuse to start without secrets, and pass `check --deploy` cleanly."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "a-long-random-production-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
    "AI_API_KEY": "sk-production-key-never-printed",
    "ALLOWED_HOSTS": "chat.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://chat.example.com",
}


def manage(
    *args: str, env: dict[str, str], unset: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """Run manage.py with ``env`` over this environment, less ENV_FILE and ``unset``."""
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in PRODUCTION and k != "ENV_FILE" and k not in unset
    }
    # Production defaults, not the test suite's relaxations.
    for name in (
        "SECURE_SSL_REDIRECT",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "PASSWORD_HASHERS",
    ):
        base.pop(name, None)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_deploy_is_clean_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("missing", ["SECRET_KEY", "AI_API_KEY"])
def test_production_refuses_to_start_without(missing):
    env = {**PRODUCTION, missing: ""}
    result = manage("check", env=env)
    assert result.returncode != 0
    assert f"{missing} is not set" in result.stderr
    assert "sk-production-key-never-printed" not in result.stderr + result.stdout


def test_an_emptied_secret_is_not_filled_in_from_a_development_env_file(tmp_path):
    # `make run` leaves a .env with DEBUG=true and a SECRET_KEY; SECRET_KEY= in the environment
    # still means unset, also when Django imports the settings a second time after the first
    # import failed (the second import once took the file's key and failed obscurely).
    env_file = tmp_path / ".env"
    env_file.write_text("DEBUG=true\nSECRET_KEY=development-key-from-make-run-0123456789abcdef\n")
    result = manage("check", env={**PRODUCTION, "SECRET_KEY": "", "ENV_FILE": str(env_file)})
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr, result.stderr[-2000:]


def test_a_deployment_hashes_passwords_with_pbkdf2_not_the_suites_fast_hasher():
    result = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.PASSWORD_HASHERS[0])",
        env=PRODUCTION,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].endswith("PBKDF2PasswordHasher")


def test_env_file_selects_the_settings_file(tmp_path):
    env_file = tmp_path / ".env.production"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in PRODUCTION.items()) + "AI_MODEL=gpt-4.1\n")
    result = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.AI_MODEL)",
        env={"ENV_FILE": str(env_file)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "gpt-4.1"


def test_env_file_that_does_not_exist_is_an_error(tmp_path):
    result = manage("check", env={**PRODUCTION, "ENV_FILE": str(tmp_path / "nope")})
    assert result.returncode != 0
    assert "ENV_FILE names a file that does not exist" in result.stderr


def test_env_example_is_a_working_production_env_file(tmp_path):
    text = (REPO / ".env.example").read_text()
    text = text.replace("\nSECRET_KEY=\n", f"\nSECRET_KEY={PRODUCTION['SECRET_KEY']}\n")
    text = text.replace("\nAI_API_KEY=\n", "\nAI_API_KEY=sk-example\n")
    env_file = tmp_path / ".env.production"
    env_file.write_text(text)
    result = manage("check", env={"ENV_FILE": str(env_file)})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CHAT_DB_THREADS", "0", "CHAT_DB_THREADS must be at least 1, not 0."),
        ("ASGI_IDLE_REQUEST_THREADS", "-1", "ASGI_IDLE_REQUEST_THREADS must be 0 or more, not -1."),
        ("LOGIN_FAILURE_LIMIT", "0", "LOGIN_FAILURE_LIMIT must be a whole number of at least 1"),
        ("TRUSTED_PROXIES", "10.0.0.0/8,nginx", "TRUSTED_PROXIES must list IP addresses"),
        ("ALERT_WEBHOOK_ALLOW_PRIVATE", "maybe", "ALERT_WEBHOOK_ALLOW_PRIVATE must be true or"),
        ("CHAT_MAX_STREAMS_PER_USER", "many", "CHAT_MAX_STREAMS_PER_USER must be a number, not"),
        ("CHAT_FOLLOWER_CHECK_SECONDS", "0", "CHAT_FOLLOWER_CHECK_SECONDS must be above 0, not 0"),
        ("SSE_WRITE_TIMEOUT_SECONDS", "nan", "SSE_WRITE_TIMEOUT_SECONDS must be above 0, not nan"),
        ("CHAT_SWEEP_GRACE_SECONDS", "1e6", "CHAT_SWEEP_GRACE_SECONDS must be between 0 and 86400"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT must be one of json, console, not 'xml'."),
        ("AI_HTTP_CLIENT", "curl", "AI_HTTP_CLIENT must be one of aiohttp, httpx, not 'curl'."),
        ("ANALYTICS_ROLLUP_SECONDS", "0", "ANALYTICS_ROLLUP_SECONDS must be between 1 and 3600"),
        ("ANALYTICS_API_TOKEN_DAYS", "400", "ANALYTICS_API_TOKEN_DAYS must be between 1 and 366"),
        ("ANALYTICS_API_REQUESTS_PER_MINUTE", "0", "ANALYTICS_API_REQUESTS_PER_MINUTE must be at"),
        ("REDIS_SENTINELS", "sentinel-1", "REDIS_SENTINELS must be host:port[,host:port...]"),
        ("REDIS_SENTINELS", "s1:26379", "REDIS_SENTINELS is set but REDIS_URL is not"),
        ("CHANNEL_REDIS_URLS", "redis://a:6379/0", "CHANNEL_REDIS_URLS is set but REDIS_URL is"),
        ("REDIS_URL", "redis+cluster://node:6379", "Only QUOTA_REDIS_URL may name a Redis Cluster"),
    ],
)
def test_a_bad_setting_is_refused_by_name(name, value, message):
    # REDIS_URL as a deployment without one (the suite's run on Redis sets it).
    result = manage("check", env={**PRODUCTION, name: value}, unset=("REDIS_URL",))
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CHAT_DRAIN_SECONDS", "-1", "CHAT_DRAIN_SECONDS must be 0 or more seconds, not '-1'"),
        (
            "CHAT_SHUTDOWN_GRACE_SECONDS",
            "soon",
            "CHAT_SHUTDOWN_GRACE_SECONDS must be a number of seconds, not 'soon'",
        ),
    ],
)
def test_a_bad_drain_time_is_refused_by_name(name, value, message):
    result = manage("check", env={**PRODUCTION, name: value})
    assert result.returncode != 0
    assert message in result.stderr
