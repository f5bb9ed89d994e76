"""The end of a reply is never lost, and what readers are told is what is stored.

The database faults here are real: a trigger installed by the test makes the database refuse
the final update of one reply (as a database that is down or failing would), and is dropped to
let it through. Both databases run the same tests (SQLite and PostgreSQL triggers).
"""

import asyncio
import json
import threading
import uuid
from contextlib import contextmanager

import pytest
from django.db import connection

from analytics.models import AICall
from chat import finishing, runner, services, streaming
from chat.models import Conversation, Message
from core import db_thread, llm
from core.metrics import REGISTRY
from devtools.live import api_client
from devtools.sse import read_stream

from .test_streaming import start_reply, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def refused_end(message_id: int):
    """Make the database refuse to store any final status of one reply until the block ends."""
    name = f"test_refuse_end_{message_id}"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"""CREATE FUNCTION {name}() RETURNS trigger AS $$
                BEGIN
                    IF NEW.id = {message_id} AND NEW.status NOT IN ('pending', 'streaming') THEN
                        RAISE EXCEPTION 'injected fault: the end of reply {message_id} refused';
                    END IF;
                    RETURN NEW;
                END $$ LANGUAGE plpgsql"""
            )
            cursor.execute(
                f"CREATE TRIGGER {name} BEFORE UPDATE ON chat_message "
                f"FOR EACH ROW EXECUTE FUNCTION {name}()"
            )
        else:
            cursor.execute(
                f"""CREATE TRIGGER {name} BEFORE UPDATE ON chat_message FOR EACH ROW
                WHEN NEW.id = {message_id} AND NEW.status NOT IN ('pending', 'streaming')
                BEGIN SELECT RAISE(ABORT, 'injected fault'); END"""
            )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER {name} ON chat_message")
                cursor.execute(f"DROP FUNCTION {name}()")
            else:
                cursor.execute(f"DROP TRIGGER {name}")


def test_end_of_a_reply_is_retried_until_it_lands(app_server, user):
    with api_client(app_server, user) as client:
        started = start_reply(client, f"Keep my end {uuid.uuid4().hex[:6]} [sim:tokens=40]")
        reply_id = started["assistant_message"]["id"]
        with refused_end(reply_id):
            result = read_stream(client, started["stream_url"])
            # Readers of the runner's process get the end from memory, as it will be stored.
            assert result.final.event == "done"
            assert result.final.data["status"] == "completed"
            # Meanwhile the reply keeps its whole text and a fresh heartbeat (no sweeper takes
            # a live runner for a dead one), and the call is recorded once.
            held = wait_for(
                lambda: Message.objects.filter(pk=reply_id, content=result.text).first()
            )
            assert held.status == "streaming"
            wait_for(
                lambda: Message.objects.get(pk=reply_id).heartbeat_at > held.heartbeat_at,
                timeout=6,
            )
            assert services.sweep_stale_replies(message_id=reply_id) == 0
            wait_for(lambda: AICall.objects.filter(message_id=reply_id).exists())
            # A stream opened meanwhile gets the same end.
            again = read_stream(client, started["stream_url"])
            assert again.text == result.text and again.final.data == result.final.data
        stored = wait_for(
            lambda: Message.objects.filter(pk=reply_id, status="completed").first(), timeout=6
        )
    assert stored.content == result.text
    assert stored.html == result.final.data["html"]
    assert stored.output_tokens == result.final.data["usage"]["output_tokens"] == 40
    calls = AICall.objects.filter(message_id=reply_id)
    assert [(c.status, c.attempt) for c in calls] == [("ok", 1)]


def test_a_reply_swept_meanwhile_is_not_rewritten_and_its_runner_stops(app_server, user):
    with api_client(app_server, user) as client:
        started = start_reply(client, f"Swept {uuid.uuid4().hex[:6]} [sim:tokens=300,tps=50]")
        reply_id = started["assistant_message"]["id"]
        read_stream(client, started["stream_url"], stop_after_deltas=5)
        wait_for(lambda: Message.objects.get(pk=reply_id).content)
        # What a sweep that took the runner for dead writes (a filtered UPDATE, as it does).
        assert Message.objects.filter(pk=reply_id, status="streaming").update(
            status="interrupted", error_code="interrupted", error_message="Stopped."
        )
        swept = Message.objects.get(pk=reply_id)
        result = read_stream(client, started["stream_url"], timeout=10)
    # The runner saw it at its next save, stopped, and told its readers what is stored.
    assert result.final.event == "error"
    assert result.final.data["status"] == "interrupted"
    assert result.final.data["code"] == "interrupted"
    stored = Message.objects.get(pk=reply_id)
    assert stored.status == "interrupted" and stored.content == swept.content
    assert stored.finished_at is None  # nothing else wrote it
    call = wait_for(lambda: AICall.objects.filter(message_id=reply_id).first())
    assert call.status == "cancelled" and AICall.objects.filter(message_id=reply_id).count() == 1


def test_nul_in_model_output_is_stripped_and_the_reply_completes(app_server, user):
    with api_client(app_server, user) as client:
        started = start_reply(client, f"Nul {uuid.uuid4().hex[:6]} [sim:nul,after=2,tokens=20]")
        result = read_stream(client, started["stream_url"])
    assert result.final.event == "done", result.final.data
    assert "\x00" not in result.text and len(result.text.split()) == 20
    reply = Message.objects.get(pk=started["assistant_message"]["id"])
    assert reply.status == "completed" and reply.content == result.text
    # The title request got a NUL too: stripped, stored.
    conversation = wait_for(
        lambda: Conversation.objects.filter(
            pk=started["conversation_id"], title_generated=True
        ).first()
    )
    assert conversation.title and "\x00" not in conversation.title


def test_title_call_is_retried_on_a_transient_fault(app_server, user):
    content = f"Name it {uuid.uuid4().hex[:6]} [sim:title,status=503,fail_first=1]"
    with api_client(app_server, user) as client:
        started = start_reply(client, content)
        result = read_stream(client, started["stream_url"])
    assert result.final.data["status"] == "completed"
    conversation = wait_for(
        lambda: Conversation.objects.filter(
            pk=started["conversation_id"], title_generated=True
        ).first()
    )
    assert conversation.title != services.fallback_title(content)
    titles = AICall.objects.filter(conversation_id=conversation.pk, task_type="title").order_by(
        "attempt"
    )
    assert [(c.attempt, c.status, c.error_code) for c in titles] == [
        (1, "error", "upstream_unavailable"),
        (2, "ok", ""),
    ]


# --- In this process: the runner with the chat's database threads under control -------------


@pytest.fixture
def in_process(simulator, settings):
    """Run replies in this process against the simulator, with short retry delays."""
    settings.AI_BASE_URL = simulator.base_url
    settings.AI_RETRY_BASE_DELAY_SECONDS = 0.05
    settings.CHAT_PERSIST_INTERVAL_SECONDS = 0.2
    finishing._flush_deadline = None
    yield
    finishing._flush_deadline = None


def run_here(main):
    """``asyncio.run(main())``, closing the loop's upstream client before the loop ends."""

    async def wrapped():
        try:
            return await main()
        finally:
            await llm.get_client().close()

    return asyncio.run(wrapped())


def _post(user, content: str):
    conversation = Conversation.objects.create(user=user)
    posted = services.post_message(conversation=conversation, content=content, start=True)
    return posted.reply.pk, posted.prepared


def test_backoff_starts_from_the_fault_not_after_database_work(in_process, simulator, user):
    """The failed attempt is recorded while the back-off runs: a busy database thread (here all
    of them, held by the test) does not hold the retry up."""
    content = f"Backoff {uuid.uuid4().hex[:6]} [sim:status=503,fail_first=1]"
    reply_id, prepared = _post(user, content)
    release = threading.Event()

    def upstream_requests():
        return sum(1 for r in simulator.requests() if content in str(r["messages"]))

    async def main():
        loop = asyncio.get_running_loop()
        busy = [
            loop.run_in_executor(db_thread._executor, release.wait, 30)
            for _ in range(db_thread._executor._max_workers)
        ]
        generation = streaming.register(reply_id, user.pk)
        task = asyncio.create_task(runner.run(generation, prepared=prepared))
        seen = 0
        for _ in range(100):  # up to 5 s
            seen = await asyncio.to_thread(upstream_requests)
            if seen >= 2:
                break
            await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(*busy)
        await task
        return seen

    try:
        seen = run_here(main)
    finally:
        release.set()
    assert seen == 2, "the retry waited for the database thread"
    calls = AICall.objects.filter(message_id=reply_id).order_by("attempt")
    assert [(c.attempt, c.status) for c in calls] == [(1, "error"), (2, "ok")]
    assert Message.objects.get(pk=reply_id).status == "completed"


def _lost(kind: str) -> float:
    return REGISTRY.get_sample_value("aiproject_chat_final_writes_lost_total", {"kind": kind}) or 0


def test_an_end_given_up_is_logged_with_its_record_and_counted(in_process, user, settings, caplog):
    settings.CHAT_FINISH_RETRY_SECONDS = 1
    reply_id, prepared = _post(user, f"Lost end {uuid.uuid4().hex[:6]} [sim:tokens=12]")
    before = _lost("end")

    async def main():
        generation = streaming.register(reply_id, user.pk)
        await runner.run(generation, prepared=prepared)
        return generation

    with refused_end(reply_id):
        generation = run_here(main)
    assert _lost("end") == before + 1
    line = next(r for r in caplog.records if r.levelname == "ERROR" and "gave up" in r.message)
    assert f"reply {reply_id}" in line.message
    record = json.loads(line.message.split("its record: ", 1)[1])
    assert record["content"] == generation.text and record["status"] == "completed"
    assert record["call"]["status"] == "ok" and record["call"]["message_id"] == reply_id
    assert "secret" not in line.message and "sk-test" not in line.message
    # Its readers were told what it would be; the call was recorded (once) all the same.
    assert generation.end.data["status"] == "completed"
    assert AICall.objects.filter(message_id=reply_id).count() == 1
    assert Message.objects.get(pk=reply_id).status == "streaming"  # until swept


def test_flush_on_shutdown_tries_pending_ends_and_gives_up_in_time(in_process, user, caplog):
    reply_id, prepared = _post(user, f"Flush {uuid.uuid4().hex[:6]} [sim:tokens=12]")
    before = _lost("end")

    async def main():
        generation = streaming.register(reply_id, user.pk)
        task = asyncio.create_task(runner.run(generation, prepared=prepared))
        for _ in range(200):  # up to 10 s
            if finishing.pending_writes():
                break
            await asyncio.sleep(0.05)
        not_stored = await runner.flush_pending_finishes(0.3)
        await task
        return not_stored

    with refused_end(reply_id):
        assert run_here(main) == 1
    assert _lost("end") == before + 1
    assert any(r.levelname == "ERROR" and f"reply {reply_id}" in r.message for r in caplog.records)
