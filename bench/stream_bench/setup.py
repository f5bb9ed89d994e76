"""The app as the streaming benches run it: its settings, its database migrated, and one
logged-in user whose session stands for every simulated user (bench/stream.py,
bench/capacity.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.stream_bench.clients import API_KEY, MODEL

REPO = Path(__file__).resolve().parents[2]
BENCH_USER = "bench-stream"

SETUP_CODE = f"""
from django.contrib.auth import get_user_model
from django.test import Client
from chat.models import Conversation
user, _ = get_user_model().objects.get_or_create(username={BENCH_USER!r})
Conversation.objects.filter(user=user).delete()
client = Client()
client.force_login(user)
print("SESSION=" + client.cookies["sessionid"].value)
"""


def app_env(database_url: str, redis_url: str, *, most_streams: int) -> dict[str, str]:
    """Production settings (DEBUG off) with every quota active but never reached.

    ``most_streams``: the most streams one round holds at once. One session stands for all the
    round's users, so the per-user cap on open streams (8 by default) is raised above it, or a
    burst of more than 8 would be answered with 429s.
    """
    return {
        "DJANGO_SETTINGS_MODULE": "aiproject.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CHANNEL_LAYER_PREFIX": f"bench-stream-{os.getpid()}",
        "DEBUG": "false",
        "SECRET_KEY": "bench-stream-not-a-secret-" + "x" * 40,
        "AI_API_KEY": API_KEY,
        "AI_MODEL": MODEL,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "SECURE_HSTS_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
        "QUOTA_REQUESTS_PER_MINUTE": "1000000",
        "QUOTA_TOKENS_PER_DAY": "1000000000",
        "QUOTA_COST_PER_DAY_USD": "1000000",
        "QUOTA_COST_PER_MONTH_USD": "1000000",
        "CHAT_MAX_STREAMS_PER_USER": str(most_streams * 2 + 10),
    }


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"manage.py {args[0]} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def prepared_session(env: dict[str, str]) -> str:
    """Migrate the app's database and return the session id of the bench's user."""
    manage(env, "migrate", "--noinput", "-v", "0")
    out = manage(env, "shell", "-c", SETUP_CODE)
    session = next((line[8:] for line in out.splitlines() if line.startswith("SESSION=")), None)
    if not session:
        raise SystemExit(f"could not create a session:\n{out}")
    return session
