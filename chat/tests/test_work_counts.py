"""The work a reply costs, counted: SQL statements, Redis round trips, thread hand-offs.

A real daphne process serves the app with counters (``devtools.counting``) against the
simulator over real HTTP; a first exchange and a second reply are counted by phase (the post,
the stream, the reply's runner, the title call). Counts are the same on every machine, so they
are held here: a change that adds a statement, a round trip or a hand-off fails this test
(update the budget below only with a reason, and docs/performance.md with it). Timings are not
tested (bench/stream.py).
"""

import json
import os
import time

import httpx
import pytest
from django.conf import settings

from analytics.models import AICall
from chat.models import Conversation
from devtools.live import api_client, app_env, run_app_server
from devtools.sse import read_stream

pytestmark = pytest.mark.django_db(transaction=True)

ON_POSTGRES = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
ON_REDIS = bool(os.environ.get("REDIS_URL"))

# Budgets per phase: {"sql": statements, "redis": round trips, "threads": hand-offs}, as
# counted on SQLite with the database quota backend (the default test run). PostgreSQL's BEGIN
# is not a statement of its own (SQLite's BEGIN IMMEDIATE is); with Redis the quota counters
# are one script (EVALSHA) instead of SQL, and the end of each reply goes to the channel
# layer's group (``other``: the publisher task).
SQL = {"post": 7, "stream": 0, "reply": 5, "title": 4, "other": 0}
THREADS = {"post": 3, "stream": 3, "reply": 1, "title": 3, "other": 0}
REDIS = {"post": 0, "stream": 0, "reply": 1, "title": 1, "other": 2}
BEGIN = {"post": 1, "reply": 1, "title": 1}  # SQLite's BEGIN IMMEDIATE
COUNTERS_IN_SQL = {"reply": 1, "title": 1}  # the quota counters' UPDATE (database backend)
# A later reply: no title call (the stand-in title goes with the conversation's updated_at),
# and its post reads the history it follows (a first post's context is the message alone).
LATER: dict[str, int] = {"post": 1}


def _budget(phase: str, *, later: bool = False) -> dict:
    sql = SQL[phase] + (LATER.get(phase, 0) if later else 0)
    if ON_POSTGRES:
        sql -= BEGIN.get(phase, 0)
    if ON_REDIS:
        sql -= COUNTERS_IN_SQL.get(phase, 0)
    return {"sql": sql, "redis": REDIS[phase] if ON_REDIS else 0, "threads": THREADS[phase]}


BUDGET = {
    "first": {phase: _budget(phase) for phase in SQL},
    "second": {phase: _budget(phase, later=True) for phase in ("post", "stream", "reply", "other")},
}


def _counts(server) -> dict:
    return httpx.get(f"{server.base_url}/__counts__", timeout=10).json()


def _reset(server) -> None:
    httpx.delete(f"{server.base_url}/__counts__", timeout=10).raise_for_status()


def _wait_for(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _reply(client, conversation_id: int) -> dict:
    posted = client.post(
        f"/api/conversations/{conversation_id}/messages",
        json={"content": "Count the work of this reply [sim:tokens=100]"},
    )
    assert posted.status_code == 202, posted.text
    result = read_stream(client, posted.json()["stream_url"])
    assert result.final.event == "done", result.final
    assert result.final.data["status"] == "completed"
    return posted.json()


def _settled(server, conversation_id: int, *, title: bool) -> dict:
    """The counts once the reply (and its title call) stored everything."""
    if title:
        _wait_for(
            lambda: Conversation.objects.filter(pk=conversation_id, title_generated=True).exists()
        )
    # The runner ends after the done event went out: wait until its counts stop moving.
    previous = None
    for _ in range(100):
        counts = _counts(server)
        if counts == previous:
            return counts
        previous = counts
        time.sleep(0.1)
    raise AssertionError("the counts kept changing")


def _within(counts: dict, budget: dict, label: str) -> list[str]:
    over = []
    for phase, limits in budget.items():
        got = counts.get(phase, {})
        for kind, limit in limits.items():
            if got.get(kind, 0) > limit:
                over.append(
                    f"{label} {phase}: {got.get(kind, 0)} {kind} > {limit}\n  "
                    + "\n  ".join(got.get("statements", []))
                )
    return over


def test_statements_round_trips_and_hand_offs_per_reply(simulator, user, tmp_path):
    env = app_env(
        simulator,
        # Production's per-process caches (prices, limits, the serving config), and no
        # timed saves mid-reply: their count depends on the reply's length in seconds.
        CONFIG_CACHE_SECONDS="300",
        CHAT_PERSIST_INTERVAL_SECONDS="600",
    )
    with (
        run_app_server(
            env=env, log_dir=tmp_path, application="devtools.counting:application"
        ) as server,
        api_client(server, user) as client,
    ):
        # A first reply fills the process's caches and opens its connections.
        warm = client.post("/api/conversations", json={}).json()["id"]
        _reply(client, warm)
        _settled(server, warm, title=True)

        conversation_id = client.post("/api/conversations", json={}).json()["id"]
        _reset(server)
        _reply(client, conversation_id)
        first = _settled(server, conversation_id, title=True)

        _reset(server)
        _reply(client, conversation_id)
        second = _settled(server, conversation_id, title=False)

    print(json.dumps({"first": first, "second": second}, indent=1))
    # The counters saw the work (a broken counter would pass any budget).
    assert first["post"]["sql"] > 0 and first["reply"]["sql"] > 0 and first["title"]["sql"] > 0
    assert AICall.objects.filter(conversation_id=conversation_id, task_type="title").count() == 1
    assert AICall.objects.filter(conversation_id=conversation_id, task_type="chat").count() == 2
    assert "title" not in second  # one title per conversation
    over = _within(first, BUDGET["first"], "first exchange") + _within(
        second, BUDGET["second"], "second reply"
    )
    assert not over, "\n".join(over)
