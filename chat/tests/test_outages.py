"""The ``fault`` group (issue 13): PostgreSQL and Redis stopped, killed and restarted, and a server
process killed, under two daphne processes and the monitor with replies streaming.

Everything runs against private servers (chat/tests/services_process.py), whatever DATABASE_URL
and REDIS_URL say, so the group runs once in CI (.ci/run deselects it on the SQLite pass). After
each scenario every guarantee is checked and each one that failed is listed in one assertion:

- every reply is final (no ``pending``/``streaming`` left) after the recovery window;
- every reader (reading SSE incrementally, reconnecting with ``Last-Event-ID``, possibly to the
  other process) ends within a bound, and what it got matches what is stored: the same text and
  the same status; a killed process may lose only the unsaved tail (stored text is a prefix);
- one AICall row per upstream attempt (the simulator's request log), title calls included;
- the user's day token counter in Redis = recorded usage + open reservations;
- ``/readyz`` answers 503 during an outage and 200 soon after it; requests that need the database
  get a fast 503 ``database_unavailable``;
- the monitor survives the outage and still sweeps a stale reply.

Measured recovery times are printed and written to ``fault-measurements.json`` in pytest's base
temporary directory.
"""

import asyncio
import json
import os
import time

import pytest

from .outages import READER_BOUND_SECONDS, TPS, FaultRun, reply_rows, running_stack
from .services_process import missing_tools

pytestmark = pytest.mark.fault

# A request that meets a hung database answers 503 within this (the statement timeout, 5 s, its
# 1 s margin, and generous room for a loaded machine).
HUNG_BOUND_SECONDS = 15.0

USERS = ["kill", "pg-5s", "pg-30s", "pg-hung", "redis-lost", "redis-kept"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    missing = missing_tools()
    if missing:
        reason = "the fault group needs " + ", ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    started = time.monotonic()
    with running_stack(log_dir=tmp_path_factory.mktemp("outages"), user_names=USERS) as stack:
        print(f"\nfault stack up in {time.monotonic() - started:.1f} s")
        yield stack


@pytest.fixture(scope="module")
def measurements(tmp_path_factory):
    results: dict[str, dict] = {}
    yield results
    path = tmp_path_factory.getbasetemp() / "fault-measurements.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nfault group measurements: {path}")


@pytest.fixture
def monitor(stack):
    """A fresh ``manage.py monitor --interval 1`` per scenario, on a healthy stack."""
    stack.ensure_healthy()
    with stack.monitor() as process:
        yield process


def report(run: FaultRun, problems: list[str], measurements: dict) -> None:
    measurements[run.name] = {"measured": run.measured, "problems": problems}
    print(f"\n{run.name}: {json.dumps(run.measured, indent=2, default=str)}")
    assert not problems, (
        f"{len(problems)} guarantees did not hold (logs in {run.stack.log_dir}):\n- "
        + "\n- ".join(problems)
    )


def test_kill_9_of_a_process_running_replies(stack, monitor, measurements):
    async def scenario():
        async with FaultRun(stack, stack.users["kill"], "kill-9") as run:
            run.reader_deadline(READER_BOUND_SECONDS + 5)
            victims = [await run.post(0, 150) for _ in range(3)]  # 6 s each
            for _ in range(2):
                await run.post(1, 100)
            await asyncio.sleep(1.5)
            run.mark("killed")
            stack.servers[0].process.kill()
            for reply in victims:
                reply.killed = True
            run.mark("back")  # the other process serves on: nothing to wait for
            await run.post_after_recovery(1, 40)
            await run.wait_readers()
        return run, victims

    run, victims = asyncio.run(scenario())
    problems = run.problems(since="killed")
    rows = {r.message_id: r for r in victims}
    for reply in rows.values():
        for reader in reply.readers:
            if reader.ended_at:
                run.measured[f"{reader.name} ended, s after the kill"] = run.since(
                    "killed", reader.ended_at
                )
    stored = reply_rows(stack.pg, list(rows))
    run.measured["chars readers saw that the killed process never saved"] = {
        reply.tag: max(len(x.text) for x in reply.readers) - len(stored[reply.message_id][1])
        for reply in victims
    }
    for reply in victims:
        if stored[reply.message_id][0] != "interrupted":
            problems.append(f"{reply.tag}: stored {stored[reply.message_id][0]!r}, not interrupted")
    report(run, problems, measurements)


async def outage(
    stack,
    monitor,
    name: str,
    seconds: float,
    *,
    stop,
    start,
    lengths,
    expect_503: bool,
    probes_at: tuple[float, ...] = (1.0,),
) -> FaultRun:
    """Stop a service (``stop``) with replies of ``lengths(seconds)`` tokens streaming on both
    processes, start it again (``start``) ``seconds`` later, and follow everything to its end.

    Requests that need the database are sent ``probes_at`` seconds into the outage."""
    async with FaultRun(stack, stack.users[name], name) as run:
        run.reader_deadline(seconds + READER_BOUND_SECONDS)
        run.start_readiness_probes()
        spare = await run.create_conversation(1)
        await run.post(1, 10)
        await run.check_monitor_sweeps(monitor, "before the outage")
        for server in (0, 1):
            for tokens in lengths:
                await run.post(server, tokens)
        await asyncio.sleep(1.0)
        run.mark("down")
        await asyncio.to_thread(stop)
        probe = asyncio.create_task(probe_during(run, spare, probes_at, expect_503=expect_503))
        await asyncio.sleep(max(run.marks["down"] + seconds - time.monotonic(), 0))
        await asyncio.to_thread(start)
        run.mark("back")
        run.measured["outage (s)"] = run.since("down", run.marks["back"])
        await run.post_after_recovery(0, 40)
        await run.check_monitor_sweeps(monitor, "after the outage")
        await probe
        await run.wait_readers()
    run.readiness_report(down="down", back="back")
    return run


async def probe_during(run: FaultRun, spare: int, at: tuple[float, ...], *, expect_503) -> None:
    """Probe at each of ``at`` seconds into the outage (the answers of all but the last probe
    are kept as ``... (probe at N s)``)."""
    for number, seconds in enumerate(at):
        await asyncio.sleep(max(run.marks["down"] + seconds - time.monotonic(), 0))
        await run.probe_during_outage(spare, expect_503=expect_503)
        if number < len(at) - 1:
            for key in [k for k in run.measured if k.startswith("during the outage: ")]:
                run.measured[f"{key} (probe at {seconds:g} s)"] = run.measured.pop(key)


def postgres_outage(stack, monitor, name: str, seconds: float) -> FaultRun:
    # Ends during the outage, ends in its middle, lasts past it.
    lengths = (75, int(TPS * (1 + seconds / 2)), int(TPS * (seconds + 4)))
    return asyncio.run(
        outage(
            stack,
            monitor,
            name,
            seconds,
            stop=stack.pg.stop,
            start=stack.pg.start,
            lengths=lengths,
            expect_503=True,
        )
    )


def test_postgres_stopped_for_5_seconds(stack, monitor, measurements):
    run = postgres_outage(stack, monitor, "pg-5s", 5)
    report(run, run.problems(since="back"), measurements)


def test_postgres_stopped_longer_than_the_pool_timeout(stack, monitor, measurements):
    run = postgres_outage(stack, monitor, "pg-30s", 30)
    report(run, run.problems(since="back"), measurements)


def test_postgres_hung_for_10_seconds(stack, monitor, measurements):
    """SIGSTOP of the whole cluster: its connections stay open and the kernel still accepts new
    ones, but nothing answers (no error, no reset) until SIGCONT. Statements are cut at
    DB_STATEMENT_TIMEOUT_SECONDS (5) + 1 s and trip the breaker: a request meeting the hang
    gets its 503 within that, the ones after it at once (probes at 1 s and 8 s in)."""
    seconds = 10
    run = asyncio.run(
        outage(
            stack,
            monitor,
            "pg-hung",
            seconds,
            stop=stack.pg.pause,
            start=stack.pg.resume,
            lengths=(75, int(TPS * (1 + seconds / 2)), int(TPS * (seconds + 4))),
            expect_503=True,
            probes_at=(1.0, 8.0),
        )
    )
    problems = run.problems(since="back")
    for key, value in run.measured.items():
        if key.startswith("during the outage: "):  # "503 database_unavailable in 6.1 s"
            elapsed = float(str(value).split(" in ")[1].removesuffix(" s"))
            if elapsed >= HUNG_BOUND_SECONDS:
                problems.append(f"{key}: {value}, not within {HUNG_BOUND_SECONDS} s")
    report(run, problems, measurements)


def redis_outage(stack, monitor, name: str, *, keep_data: bool) -> FaultRun:
    seconds = 5

    def start():
        if not keep_data:
            stack.redis.wipe()
        stack.redis.start()

    return asyncio.run(
        outage(
            stack,
            monitor,
            name,
            seconds,
            stop=stack.redis.kill,
            start=start,
            lengths=(75, int(TPS * (seconds + 4))),  # ends during the outage, lasts past it
            expect_503=False,
        )
    )


def test_redis_killed_and_restarted_empty(stack, monitor, measurements):
    """SIGKILL, and Redis comes back without its data (no persistence): counters are reseeded
    from the recorded calls, reservations and channel messages are gone."""
    run = redis_outage(stack, monitor, "redis-lost", keep_data=False)
    report(run, run.problems(since="back"), measurements)


def test_redis_killed_and_restarted_with_its_data(stack, monitor, measurements):
    """SIGKILL, and Redis comes back with its data (append-only file, as in docker-compose):
    the charges made while it was down must still reach the counters."""
    run = redis_outage(stack, monitor, "redis-kept", keep_data=True)
    report(run, run.problems(since="back"), measurements)
