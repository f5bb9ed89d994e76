"""The app, served with counters of its work: SQL statements, Redis round trips, thread hand-offs.

Serve ``devtools.counting:application`` instead of ``aiproject.asgi:application`` (a test does,
chat/tests/test_work_counts.py). Every unit of work is counted under the *phase* it belongs to:

- ``post``: the request that posts a message (``POST /api/conversations/<id>/messages``),
  up to its 202, authentication and admission included;
- ``stream``: the request that reads a reply's events (``GET /api/messages/<id>/stream``);
- ``reply``: the reply's runner task, from its start to its end stored (``chat.runner.run``),
  the title call left out;
- ``title``: the title call after a first exchange (``chat.titles.name_conversation``);
- ``other``: everything else (other requests, the channel layer's publisher);
- not counted: the control channel's receive loop (it polls Redis on its own clock).

``GET /__counts__`` answers the counts as JSON (``{phase: {"sql": n, "redis": n, "threads": n,
"statements": [...]}}``); ``DELETE /__counts__`` sets them to zero. Counts, not timings: they
are the same on every machine, so a test can hold them (docs/performance.md, "Work per reply").

What is counted:

- a SQL statement: each ``execute``/``executemany`` through Django's connection (its
  ``execute_wrappers``), BEGIN/COMMIT issued by the driver not included;
- a Redis round trip: each command or pipeline written to a Redis connection (sync and asyncio
  clients: the quota scripts, the cache, channels-redis);
- a thread hand-off: each piece of work submitted to a thread pool from the event loop (every
  ``sync_to_async``/``run_in_executor``: the database thread, a request's thread, the loop's
  default executor).
"""

import contextvars
import json
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from aiproject.asgi import application as app_application

_phase: contextvars.ContextVar[str] = contextvars.ContextVar("counting_phase", default="other")
_lock = threading.Lock()
_counts: dict[str, dict] = defaultdict(lambda: {"sql": 0, "redis": 0, "threads": 0})
_statements: dict[str, list[str]] = defaultdict(list)


def _count(kind: str, what: str = "") -> None:
    phase = _phase.get()
    if phase in ("off", "listening"):
        return
    with _lock:
        _counts[phase][kind] += 1
        if what:
            _statements[phase].append(what)


def _snapshot() -> dict:
    with _lock:
        return {
            phase: {**counts, "statements": list(_statements[phase])}
            for phase, counts in _counts.items()
        }


def _reset() -> None:
    with _lock:
        _counts.clear()
        _statements.clear()


# -- SQL ----------------------------------------------------------------------------------------


def _counting_execute(execute, sql, params, many, context):
    _count("sql", " ".join(str(sql).split())[:160])
    return execute(sql, params, many, context)


def _watch_connection(sender, connection, **kwargs):
    if _counting_execute not in connection.execute_wrappers:
        connection.execute_wrappers.append(_counting_execute)


# -- Redis --------------------------------------------------------------------------------------


def _patch_redis() -> None:
    import redis.asyncio.connection as async_connection
    import redis.connection as sync_connection

    def describe(command) -> str:
        if isinstance(command, (list, tuple)) and command and isinstance(command[0], bytes):
            return "redis " + command[0].decode(errors="replace").split("\r\n")[2][:40]
        return "redis"

    sync_send = sync_connection.AbstractConnection.send_packed_command

    def send_packed_command(self, command, check_health=True):
        _count("redis", describe(command))
        return sync_send(self, command, check_health)

    sync_connection.AbstractConnection.send_packed_command = send_packed_command

    async_send = async_connection.AbstractConnection.send_packed_command

    async def async_send_packed_command(self, command, check_health=True):
        _count("redis", describe(command))
        return await async_send(self, command, check_health)

    async_connection.AbstractConnection.send_packed_command = async_send_packed_command


# -- threads ------------------------------------------------------------------------------------


def _patch_thread_pools() -> None:
    submit = ThreadPoolExecutor.submit

    def counting_submit(self, fn, /, *args, **kwargs):
        # Work handed from the event loop only: a thread's own submits are not a loop hand-off.
        if threading.current_thread() is threading.main_thread():
            _count("threads", f"thread {self._thread_name_prefix or 'pool'}")
        return submit(self, fn, *args, **kwargs)

    ThreadPoolExecutor.submit = counting_submit  # type: ignore[method-assign]


# -- phases -------------------------------------------------------------------------------------


def _patch_phases() -> None:
    from chat import runner, streaming, titles

    listen = streaming._listen_for_control

    async def uncounted_listen(*args, **kwargs):
        # The control channel's receive loop polls Redis on its own clock (a blocking pop with
        # a timeout): its round trips are not any reply's, and their number depends on time.
        _phase.set("listening")
        return await listen(*args, **kwargs)

    streaming._listen_for_control = uncounted_listen

    run = runner.run

    async def counted_run(*args, **kwargs):
        _phase.set("reply")  # the runner's task has a context of its own
        return await run(*args, **kwargs)

    runner.run = counted_run

    name_conversation = titles.name_conversation

    async def counted_title(*args, **kwargs):
        token = _phase.set("title")
        try:
            return await name_conversation(*args, **kwargs)
        finally:
            _phase.reset(token)

    titles.name_conversation = counted_title


def _phase_of(scope) -> str:
    path, method = scope.get("path", ""), scope.get("method", "")
    if method == "POST" and path.startswith("/api/conversations/") and path.endswith("/messages"):
        return "post"
    if method == "GET" and path.startswith("/api/messages/") and path.endswith("/stream"):
        return "stream"
    return "other"


async def _answer(send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def application(scope, receive, send):
    if scope["type"] == "http" and scope.get("path") == "/__counts__":
        _phase.set("off")
        if scope.get("method") == "DELETE":
            _reset()
            return await _answer(send, 204, b"")
        return await _answer(send, 200, json.dumps(_snapshot()).encode())
    if scope["type"] == "http":
        _phase.set(_phase_of(scope))
    return await app_application(scope, receive, send)


def _install() -> None:
    from django.db.backends.signals import connection_created

    from analytics import request_metrics

    # The requests-per-minute counts go to the database every 10 s, from whichever request
    # comes then (one upsert and one hand-off a process, not a reply's): a count that depends
    # on the clock. Not flushed here.
    request_metrics.FLUSH_EVERY_SECONDS = float("inf")

    connection_created.connect(_watch_connection, weak=False)
    _patch_redis()
    _patch_thread_pools()
    _patch_phases()


_install()
