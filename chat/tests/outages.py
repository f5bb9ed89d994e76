"""Test support for the ``fault`` group (test_outages.py): the app on private PostgreSQL and
Redis servers, and clients that read replies the way a browser does while those servers fail.

A ``Stack`` is two daphne processes, the LLM simulator, a PostgreSQL and a redis-server of its
own (chat/tests/services_process.py). A ``FaultRun`` drives one scenario in one event loop: it
posts replies, follows each with readers on both processes (reading SSE incrementally, and
reconnecting with ``Last-Event-ID`` to the other process on ``stream_interrupted`` or a dropped
connection, as the page does), probes ``/readyz``, and afterwards lists every guarantee that did
not hold (``problems()``) and what it measured (``measured``).
"""

import asyncio
import contextlib
import json
import logging
import os
import re
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devtools.live import CSRF_TOKEN, AppServer, app_env, run_app_server
from devtools.processes import REPO, managed_process
from devtools.simulator_process import RunningSimulator, run_simulator
from devtools.sse import SSEEvent, aiter_sse

from .services_process import PostgresServer, RedisServer, postgres_server, redis_server

# One INFO line per request of the clients here would bury a failure's report.
logging.getLogger("httpx").setLevel(logging.WARNING)

TPS = 25  # the simulator's tokens per second: a reply of 75 tokens lasts 3 s
TOKENS_PER_DAY = 200_000  # a per-user quota, so that every call is reserved and charged
READER_BOUND_SECONDS = 30.0  # after the service is back, every reader has ended by then
SETTLE_SECONDS = 20.0  # after the service is back, replies are final and the monitor sweeps
READY_BOUND_SECONDS = 20.0  # /readyz answers 200 again within this (generous: "a few seconds")
RETRY_PAUSE_SECONDS = 0.5  # a reader's pause before it reconnects (the page waits 2 s)
POOL_TIMEOUT_SECONDS = 10.0  # DB_POOL_TIMEOUT_SECONDS' default: a 503 must not wait for it
TERMINAL = {"completed", "cancelled", "failed", "interrupted"}

# Run in the served app's environment: migrate, then one user per name with a session.
_SETUP = """
import json
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
call_command("migrate", interactive=False, verbosity=0)
users = []
for name in json.loads(NAMES):
    user = get_user_model().objects.create_user(name)
    client = Client()
    client.force_login(user)
    users.append({"id": user.pk, "name": name, "sessionid": client.cookies["sessionid"].value})
print("USERS=" + json.dumps(users))
"""


def prepare_database(env: dict[str, str], names: list[str]) -> dict[str, dict]:
    """Migrate the stack's database and create the users; return them by name."""
    code = _SETUP.replace("NAMES", repr(json.dumps(names)))
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    line = next((x for x in result.stdout.splitlines() if x.startswith("USERS=")), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"setting up the database failed:\n{result.stdout}\n{result.stderr}")
    return {user["name"]: user for user in json.loads(line.removeprefix("USERS="))}


@dataclass
class Stack:
    pg: PostgresServer
    redis: RedisServer
    simulator: RunningSimulator
    env: dict[str, str]
    log_dir: Path
    users: dict[str, dict]
    servers: list[AppServer | None] = field(default_factory=lambda: [None, None])
    _exits: list[ExitStack | None] = field(default_factory=lambda: [None, None])

    def start_server(self, index: int) -> AppServer:
        self.stop_server(index)
        exits = ExitStack()
        self.servers[index] = exits.enter_context(
            run_app_server(env=self.env, log_dir=self.log_dir)
        )
        self._exits[index] = exits
        return self.servers[index]

    def stop_server(self, index: int) -> None:
        exits, self._exits[index] = self._exits[index], None
        if exits is not None:
            exits.close()

    def ensure_healthy(self) -> None:
        """Bring back whatever an earlier scenario left down (a scenario that failed halfway)."""
        if self.pg.paused:
            self.pg.resume()
        if not self.pg.running():
            self.pg.start()
        if not self.redis.running():
            self.redis.start()
        for index, server in enumerate(self.servers):
            if server is None or server.process.poll() is not None or not _ready(server, 20):
                self.start_server(index)

    def monitor(self):
        """``manage.py monitor --interval 1`` against the stack, stopped when the block ends."""
        log_path = self.log_dir / f"monitor-{uuid.uuid4().hex[:6]}.log"
        args = [sys.executable, "manage.py", "monitor", "--interval", "1"]
        return managed_process(
            args, log_path=log_path, ready=lambda: True, what="monitor", env=self.full_env
        )

    @property
    def full_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}


def _ready(server: AppServer, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{server.base_url}/readyz", timeout=5).status_code == 200:
                return True
        time.sleep(0.2)
    return False


@contextmanager
def running_stack(*, log_dir: Path, user_names: list[str]):
    """Start PostgreSQL, Redis, the simulator and two daphne processes; stop all of them."""
    with ExitStack() as exits:
        pg = exits.enter_context(postgres_server())
        redis = exits.enter_context(redis_server(aof=True))
        simulator = exits.enter_context(run_simulator("--ttft-ms", "100", "--tps", str(TPS)))
        env = app_env(
            simulator,
            DATABASE_URL=pg.url,
            REDIS_URL=redis.url,
            QUOTA_TOKENS_PER_DAY=str(TOKENS_PER_DAY),
            # A scenario follows 8 replies with 2 readers each, all one user's: no stream limit
            # (429 too_many_streams) may refuse them. A stopped process drains briefly.
            CHAT_MAX_STREAMS_PER_USER="100",
            CHAT_DRAIN_SECONDS="2",
            # A sweep interrupts a stale reply only this long after it first found it (if the
            # app has such a grace): short, as CHAT_STALE_AFTER_SECONDS is in tests, and still
            # ten times the persist interval, so a runner alive after an outage saves first.
            CHAT_SWEEP_GRACE_SECONDS="3",
        )
        stack = Stack(pg, redis, simulator, env, log_dir, prepare_database(env, user_names))
        exits.callback(stack.stop_server, 1)
        exits.callback(stack.stop_server, 0)
        stack.start_server(0)
        stack.start_server(1)
        yield stack


# --- one scenario ---------------------------------------------------------------------------


@dataclass
class Reader:
    """One browser tab following a reply; ``first`` is the process it connects to first."""

    name: str
    first: int
    text: str = ""
    last_event_id: str | None = None  # as EventSource keeps it: the last `id:` received
    final: SSEEvent | None = None
    started_at: float = field(default_factory=time.monotonic)
    ended_at: float | None = None
    hung: bool = False
    connections: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass
class Reply:
    tag: str
    server: int
    tokens: int
    conversation_id: int
    message_id: int
    stream_url: str
    killed: bool = False  # its process was killed outright
    readers: list[Reader] = field(default_factory=list)


class FaultRun:
    """One scenario: its clients, replies, readers and probes, and what it found."""

    def __init__(self, stack: Stack, user: dict, name: str):
        self.stack, self.user, self.name = stack, user, name
        self.replies: list[Reply] = []
        self.tasks: list[asyncio.Task] = []
        self.reader_tasks: list[asyncio.Task] = []
        self._deadline = time.monotonic() + 300  # set by the scenario: reader_deadline()
        self.readiness: list[tuple[float, float, int, int | None]] = []
        self.marks: dict[str, float] = {}
        self.measured: dict[str, object] = {}
        self.found: list[str] = []
        self.clients: list[httpx.AsyncClient] = []
        self._probing = True

    async def __aenter__(self):
        cookies = {"sessionid": self.user["sessionid"], "csrftoken": CSRF_TOKEN}
        for server in self.stack.servers:
            self.clients.append(
                httpx.AsyncClient(
                    base_url=server.base_url,
                    cookies=cookies,
                    headers={"X-CSRFToken": CSRF_TOKEN},
                    timeout=httpx.Timeout(30, read=None),
                    limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
                )
            )
        self.marks["start"] = time.monotonic()
        return self

    async def __aexit__(self, *exc_info):
        self._probing = False
        for task in self.tasks + self.reader_tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, *self.reader_tasks, return_exceptions=True)
        for client in self.clients:
            await client.aclose()

    def mark(self, name: str) -> float:
        self.marks[name] = time.monotonic()
        return self.marks[name]

    def since(self, mark: str, moment: float | None = None) -> float:
        return round((moment if moment is not None else time.monotonic()) - self.marks[mark], 2)

    # -- replies and readers --

    async def create_conversation(self, server: int) -> int:
        response = await self.clients[server].post("/api/conversations", json={})
        if response.status_code != 201:
            raise RuntimeError(f"POST /api/conversations: {response.status_code} {response.text}")
        return response.json()["id"]

    async def post(self, server: int, tokens: int) -> Reply:
        """Post a message whose reply lasts ``tokens / TPS`` seconds, and follow it."""
        conversation_id = await self.create_conversation(server)
        tag = f"{self.name}-{len(self.replies)}-{uuid.uuid4().hex[:6]}"
        response = await self.clients[server].post(
            f"/api/conversations/{conversation_id}/messages",
            json={"content": f"Outage test {tag} [sim:tokens={tokens}]"},
        )
        if response.status_code != 202:
            raise RuntimeError(f"POST message: {response.status_code} {response.text}")
        body = response.json()
        reply = Reply(
            tag,
            server,
            tokens,
            conversation_id,
            body["assistant_message"]["id"],
            body["stream_url"],
        )
        self.replies.append(reply)
        for first in (server, 1 - server):  # one reader on each process
            reader = Reader(f"{tag}/reader-first-on-{first}", first)
            reply.readers.append(reader)
            self.reader_tasks.append(asyncio.create_task(self._follow(reply, reader)))
        return reply

    def reader_deadline(self, seconds_from_now: float) -> None:
        """Readers that have not ended by then are hung (call it before the first post)."""
        self._deadline = time.monotonic() + seconds_from_now

    async def _follow(self, reply: Reply, reader: Reader) -> None:
        """Read the reply's stream to its final event, reconnecting like the page does."""
        attempt = 0
        while True:
            if time.monotonic() > self._deadline:
                reader.hung = True
                return
            index = (reader.first + attempt) % 2
            attempt += 1
            headers = {"Accept": "text/event-stream"}
            if reader.last_event_id is not None:
                headers["Last-Event-ID"] = reader.last_event_id
            try:
                async with asyncio.timeout(max(self._deadline - time.monotonic(), 0.01)):
                    if await self._read_once(index, reply, reader, headers):
                        reader.ended_at = time.monotonic()
                        return
            except TimeoutError:
                reader.hung = True
                reader.connections.append(f"{index}: still open at the deadline")
                return
            except httpx.TransportError as exc:
                reader.connections.append(f"{index}: {type(exc).__name__}")
            await asyncio.sleep(RETRY_PAUSE_SECONDS)

    async def _read_once(self, index: int, reply: Reply, reader: Reader, headers) -> bool:
        """One connection; True once the final event arrived (or a refusal ends the reader)."""
        async with self.clients[index].stream("GET", reply.stream_url, headers=headers) as response:
            if response.status_code != 200:
                body = await response.aread()
                note = f"{index}: HTTP {response.status_code} {_error_code(body)}"
                reader.connections.append(note)
                if response.status_code >= 500 and response.status_code != 503:
                    reader.problems.append(f"opening the stream answered {note}, not a 503")
                if response.status_code < 500:
                    reader.problems.append(f"opening the stream was refused: {note}")
                    return True
                return False
            deltas, last_delta_id = 0, None
            async for item in aiter_sse(response):
                if isinstance(item, str):
                    continue
                if item.id is not None:
                    reader.last_event_id = item.id
                if item.event == "delta":
                    deltas += 1
                    reader.text += item.data["text"]
                    if item.id != str(len(reader.text)):
                        reader.problems.append(
                            f"a delta's id is {item.id}, its end offset {len(reader.text)}"
                        )
                    last_delta_id = int(item.id) if item.id else last_delta_id
                elif item.event == "error" and item.data.get("code") == "stream_interrupted":
                    reader.connections.append(f"{index}: stream_interrupted after {deltas} deltas")
                    if item.id is not None:
                        reader.problems.append(f"stream_interrupted carries an id ({item.id})")
                    return False
                elif item.event in ("done", "error"):
                    reader.connections.append(
                        f"{index}: {item.event} {item.data.get('status')} after {deltas} deltas"
                    )
                    if last_delta_id is not None and int(item.id or -1) < last_delta_id:
                        reader.problems.append(
                            f"the final event's id {item.id} is below the last delta id "
                            f"{last_delta_id} of its connection"
                        )
                    reader.final = item
                    return True
            reader.connections.append(f"{index}: closed without a final event ({deltas} deltas)")
            return False

    async def wait_readers(self) -> None:
        await asyncio.gather(*self.reader_tasks)

    # -- probes --

    def start_readiness_probes(self) -> None:
        for index in range(2):
            self.tasks.append(asyncio.create_task(self._probe_readiness(index)))

    async def _probe_readiness(self, index: int) -> None:
        while self._probing:
            started = time.monotonic()
            try:
                response = await self.clients[index].get("/readyz", timeout=6)
                status = response.status_code
            except httpx.TransportError:
                status = None
            self.readiness.append((started, time.monotonic(), index, status))
            await asyncio.sleep(0.25)

    async def probe_during_outage(self, conversation_id: int, *, expect_503: bool) -> None:
        """POST a message and list conversations while a service is down; time the answers."""
        await asyncio.gather(
            self._probe(0, "POST", f"/api/conversations/{conversation_id}/messages", expect_503),
            self._probe(1, "GET", "/api/conversations", expect_503),
        )

    async def _probe(self, index: int, method: str, url: str, expect_503: bool) -> None:
        started = time.monotonic()
        body = {"content": "Hello"} if method == "POST" else None
        try:
            response = await self.clients[index].request(
                method, url, json=body, timeout=POOL_TIMEOUT_SECONDS + 20
            )
            status, code = response.status_code, _error_code(response.content)
            retry_after = response.headers.get("Retry-After")
        except httpx.TransportError as exc:
            status, code, retry_after = None, type(exc).__name__, None
        elapsed = round(time.monotonic() - started, 2)
        name = f"{method} {url}"
        self.measured[f"during the outage: {name}"] = f"{status} {code} in {elapsed} s"
        if not expect_503:
            return
        if status != 503 or code != "database_unavailable" or not retry_after:
            self.found.append(
                f"{name} during the outage answered {status} {code!r} (Retry-After "
                f"{retry_after}) in {elapsed} s, not 503 database_unavailable"
            )
        elif elapsed >= POOL_TIMEOUT_SECONDS:
            self.found.append(f"{name} during the outage took {elapsed} s: not a fast 503")

    async def post_after_recovery(self, server: int, tokens: int) -> Reply | None:
        """Post until the app accepts a message again; measure how long that took."""
        deadline = time.monotonic() + SETTLE_SECONDS
        failures = []
        while time.monotonic() < deadline:
            try:
                reply = await self.post(server, tokens)
            except (RuntimeError, httpx.TransportError) as exc:
                failures.append(str(exc)[:120])
                await asyncio.sleep(0.25)
                continue
            self.measured["first message accepted after recovery (s)"] = self.since("back")
            return reply
        self.found.append(
            f"no message was accepted within {SETTLE_SECONDS} s of the recovery: {failures[-3:]}"
        )
        return None

    async def check_monitor_sweeps(self, monitor, when: str) -> None:
        """Put a stale reply in and see the monitor mark it interrupted (it survived).

        Before the fault it shows the monitor is up and holds a database connection (the one an
        outage breaks); after it, that the monitor recovered."""
        if monitor.poll() is not None:
            self.found.append(f"the monitor exited {when} (code {monitor.returncode})")
            return
        source = self.replies[-1]  # any reply row will do as a template
        try:
            conversation_id = await self.create_conversation(0)
            message_id = await asyncio.to_thread(
                insert_stale_reply, self.stack.pg, source.message_id, conversation_id
            )
        except Exception as exc:
            self.found.append(f"could not put a stale reply in {when}: {exc!r}")
            return
        inserted = time.monotonic()
        while time.monotonic() - inserted < SETTLE_SECONDS:
            rows = await asyncio.to_thread(reply_rows, self.stack.pg, [message_id])
            status = rows[message_id][0]
            if status != "streaming":
                self.measured[f"monitor swept a stale reply {when} (s)"] = round(
                    time.monotonic() - inserted, 2
                )
                if status != "interrupted":
                    self.found.append(f"the monitor's sweep {when} stored {status!r}")
                return
            await asyncio.sleep(0.25)
        self.found.append(
            f"the monitor did not sweep a stale reply put in {when} within {SETTLE_SECONDS:.0f} s"
            f" (its last error: {last_error(monitor_log(self.stack))})"
        )

    # -- afterwards --

    def readiness_report(self, *, down: str, back: str) -> None:
        """/readyz: 503 on each process while the service is down, 200 soon after it is back."""
        down_at, back_at = self.marks[down], self.marks[back]
        for index in range(2):
            samples = [(t0, t1, s) for t0, t1, i, s in self.readiness if i == index]
            # Answered while it was down (from half a second in: a check takes a moment).
            during = [(t0, t1, s) for t0, t1, s in samples if down_at + 0.5 < t1 <= back_at]
            if not any(s == 503 for _, _, s in during):
                shown = [
                    f"{s} at +{t1 - down_at:.1f} s (asked at +{t0 - down_at:.1f} s)"
                    for t0, t1, s in samples
                    if t0 < back_at and t1 > down_at
                ]
                self.found.append(
                    f"/readyz of process {index} answered no 503 while the service was down "
                    f"({back_at - down_at:.1f} s): {shown}"
                )
            after = [t1 for t0, t1, s in samples if t0 >= back_at and s == 200]
            if after:
                seconds = round(after[0] - back_at, 2)
                self.measured[f"/readyz 200 again on process {index} (s)"] = seconds
                if seconds > READY_BOUND_SECONDS:
                    self.found.append(
                        f"/readyz of process {index} took {seconds} s to answer 200 again"
                    )
            else:
                self.found.append(f"/readyz of process {index} never answered 200 again")

    def problems(self, *, since: str) -> list[str]:
        """Check every guarantee of the issue after the scenario; return what did not hold."""
        problems = list(self.found)
        ids = [r.message_id for r in self.replies]
        rows = wait_terminal(self.stack.pg, ids, SETTLE_SECONDS)
        self.measured["replies"] = {
            r.tag: f"{rows[r.message_id][0]}, {len(rows[r.message_id][1])} chars stored"
            for r in self.replies
        }
        ended = [x.ended_at for r in self.replies for x in r.readers if x.ended_at]
        if ended:
            self.measured["last reader ended (s after recovery)"] = self.since(since, max(ended))
        for reply in self.replies:
            status, content = rows[reply.message_id]
            if status not in TERMINAL:
                problems.append(f"{reply.tag}: still {status!r} after the recovery window")
            for reader in reply.readers:
                problems += [f"{reader.name}: {p}" for p in reader.problems]
                problems += _reader_problems(reply, reader, status, content)
        problems += self._call_problems(rows)
        problems += self._quota_problems()
        return problems

    def _call_problems(self, rows) -> list[str]:
        """One AICall row per upstream attempt (the simulator's log), titles included."""
        problems: list[str] = []
        deadline = time.monotonic() + 10  # title calls follow a completed reply
        while True:
            requests = self.stack.simulator.requests()
            counts = {r.tag: upstream_counts(requests, r.tag) for r in self.replies}
            recorded = {r.tag: recorded_calls(self.stack.pg, r) for r in self.replies}
            if counts == recorded or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        for reply in self.replies:
            (attempts, titles), (calls, title_calls) = counts[reply.tag], recorded[reply.tag]
            if reply.killed:  # documented: a killed process records none of its calls
                ok = calls <= attempts and title_calls <= titles
            else:
                ok = (calls, title_calls) == (attempts, titles)
            if not ok:
                problems.append(
                    f"{reply.tag}: {attempts} upstream attempts and {titles} title calls, but "
                    f"{calls} and {title_calls} AICall rows"
                )
        return problems

    def _quota_problems(self) -> list[str]:
        """The day's counter = recorded usage + open reservations, once the app has had the
        time to apply or reconcile what it could not charge during the outage."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            counter, reserved, recorded = quota_state(self.stack, self.user["id"])
            self.measured["quota"] = (
                f"counter {counter}, open reservations {reserved}, recorded usage {recorded}"
            )
            if counter is None or counter == recorded + reserved:
                break  # None: reseeded from the recorded calls when next read, nothing lost
            if time.monotonic() > deadline:
                missing = recorded + reserved - counter
                return [
                    f"quota: the day's token counter is {counter} but the recorded usage is "
                    f"{recorded} (+ {reserved} in open reservations): "
                    + (f"{missing} tokens not charged" if missing > 0 else f"{-missing} too many")
                ]
            time.sleep(0.5)
        return []


def _reader_problems(reply: Reply, reader: Reader, status: str, content: str) -> list[str]:
    name = reader.name
    if reader.hung:
        return [
            f"{name}: no final event within {READER_BOUND_SECONDS:.0f} s of the recovery "
            f"(reply stored as {status!r}; connections: {'; '.join(reader.connections[-4:])})"
        ]
    if reader.final is None:
        return []  # refused: already listed by the reader
    problems = []
    sent = reader.final.data.get("status")
    if sent != status:
        problems.append(f"{name}: the closing event says {sent!r}, the reply is stored {status!r}")
    if reply.killed:
        if not reader.text.startswith(content):
            problems.append(f"{name}: the stored text is not a prefix of what the reader saw")
    elif reader.text != content:
        problems.append(
            f"{name}: streamed {len(reader.text)} chars ({reader.final.event}), stored "
            f"{len(content)}; they differ from char {_first_difference(reader.text, content)}"
        )
    return problems


def _first_difference(a: str, b: str) -> int:
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def _error_code(body: bytes) -> str:
    try:
        return json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return "(not a JSON error)"


# --- reading the stack's state --------------------------------------------------------------


def reply_rows(pg: PostgresServer, ids: list[int]) -> dict[int, tuple[str, str]]:
    rows = pg.query("SELECT id, status, content FROM chat_message WHERE id = ANY(%s)", (ids,))
    return {row[0]: (row[1], row[2]) for row in rows}


def wait_terminal(pg: PostgresServer, ids: list[int], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        rows = reply_rows(pg, ids)
        if all(status in TERMINAL for status, _ in rows.values()) or time.monotonic() > deadline:
            return rows
        time.sleep(0.25)


def upstream_counts(requests: list[dict], tag: str) -> tuple[int, int]:
    """(streamed chat attempts, title calls) the simulator received for the reply ``tag``."""
    mine = [r for r in requests if tag in r["messages"][-1]["content"]]
    return sum(1 for r in mine if r["stream"]), sum(1 for r in mine if not r["stream"])


def recorded_calls(pg: PostgresServer, reply: Reply) -> tuple[int, int]:
    chat, title = pg.query(
        "SELECT count(*) FILTER (WHERE message_id = %s AND task_type = 'chat'),"
        " count(*) FILTER (WHERE conversation_id = %s AND task_type = 'title')"
        " FROM analytics_aicall",
        (reply.message_id, reply.conversation_id),
    )[0]
    return chat, title


def quota_state(stack: Stack, user_id: int) -> tuple[int | None, int, int]:
    """(the day's token counter in Redis, its open reservations, the user's recorded tokens)."""
    from analytics import quotas

    meter = quotas.user_meters(user_id, None)[0]
    backend = quotas.RedisBackend(stack.redis.url)  # its key names; this process's settings
    with backend.client as client:
        raw = client.get(meter.key)
        reserved = 0
        for rid in client.zrange(backend.zset, 0, -1):  # expired ones too: not given back yet
            reserved += int(client.hget(rid, meter.key) or 0)
    recorded = stack.pg.query(
        "SELECT coalesce(sum(total_tokens), 0) FROM analytics_aicall"
        " WHERE user_id = %s AND NOT is_demo AND created_at >= %s AND created_at < %s",
        (user_id, meter.start, meter.resets_at),
    )[0][0]
    return (int(raw) if raw is not None else None), reserved, int(recorded)


def insert_stale_reply(pg: PostgresServer, source_id: int, conversation_id: int) -> int:
    """A copy of reply ``source_id`` that is ``streaming`` and has not saved for an hour."""
    from chat.models import Message

    overrides = {
        "conversation_id": "%s",
        "status": "'streaming'",
        "heartbeat_at": "now() - interval '1 hour'",
        "reply_to_id": "NULL",
        "content": "'stale'",
        "runner_channel": "''",
        "stale_since": "NULL",  # where the sweep keeps its first finding
    }
    columns = [f.column for f in Message._meta.concrete_fields if f.column != "id"]
    values = [overrides.get(c, f'"{c}"') for c in columns]
    sql = (
        f"INSERT INTO chat_message ({', '.join(f'"{c}"' for c in columns)}) "
        f"SELECT {', '.join(values)} FROM chat_message WHERE id = %s RETURNING id"
    )
    return pg.query(sql, (conversation_id, source_id))[0][0]


def monitor_log(stack: Stack) -> str:
    logs = sorted(stack.log_dir.glob("monitor-*.log"), key=lambda p: p.stat().st_mtime)
    return logs[-1].read_text(errors="replace") if logs else ""


def last_error(log: str) -> str:
    """The last exception named in a JSON log, e.g. 'OperationalError: the connection is closed'."""
    found = re.findall(r"(\w+(?:Error|Exception): [^\"\\]*)", log)
    return found[-1] if found else "none logged"
