"""Two server processes sharing PostgreSQL/SQLite and Redis: replies follow the user across them."""

import threading
import time

import pytest
from django.conf import settings

from chat.models import Message
from devtools.live import api_client, app_env, run_app_server
from devtools.sse import read_stream

from .test_streaming import start_reply

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not settings.REDIS_URL, reason="cross-process streaming needs REDIS_URL (a real Redis)"
    ),
]


@pytest.fixture(scope="module")
def second_server(django_db_setup, django_db_blocker, simulator, tmp_path_factory):
    with django_db_blocker.unblock():
        env = app_env(simulator)
    with run_app_server(env=env, log_dir=tmp_path_factory.mktemp("daphne-b")) as server:
        yield server


def test_reconnect_lands_on_another_process(app_server, second_server, user):
    with api_client(app_server, user) as a, api_client(second_server, user) as b:
        started = start_reply(a, "Across processes [sim:tokens=120,tps=60]")
        first = read_stream(a, started["stream_url"], stop_after_deltas=5)
        second = read_stream(b, started["stream_url"], last_event_id=first.events[-1].id)
    assert second.final.event == "done"
    reply = Message.objects.get(pk=started["assistant_message"]["id"])
    assert first.text + second.text == reply.content
    # Every delta's id is the offset after it: no gap, no overlap.
    offset = int(first.events[-1].id)
    for event in second.events:
        if event.event == "delta":
            assert int(event.id) == offset + len(event.data["text"])
            offset = int(event.id)


def test_a_post_stream_cut_off_resumes_on_another_process(app_server, second_server, user):
    with api_client(app_server, user) as a, api_client(second_server, user) as b:
        conversation = a.post("/api/conversations", json={}).json()["id"]
        first = read_stream(
            a,
            f"/api/conversations/{conversation}/messages",
            method="POST",
            json={"content": "Posted on A, read on B [sim:tokens=120,tps=60]"},
            stop_after_deltas=5,
        )
        accepted = first.events[0].data
        second = read_stream(b, accepted["stream_url"], last_event_id=first.events[-1].id)
    assert first.events[0].event == "accepted"
    reply = Message.objects.get(pk=accepted["assistant_message"]["id"])
    assert second.final.event == "done"
    assert first.text + second.text == reply.content


def test_whole_stream_from_the_other_process(app_server, second_server, user):
    with api_client(app_server, user) as a, api_client(second_server, user) as b:
        # B posts first, so its control channel listens while it follows A's reply: with two
        # channel prefixes in one process, that listener held back the follower's deltas.
        own = start_reply(b, "B's own reply [sim:tokens=5]")
        assert read_stream(b, own["stream_url"]).final.event == "done"
        started = start_reply(a, "Watch from afar [sim:tokens=80,tps=40]")
        result = read_stream(b, started["stream_url"])
    assert result.final.event == "done" and result.final.data["status"] == "completed"
    assert result.text == Message.objects.get(pk=started["assistant_message"]["id"]).content
    # It arrived live from A's publisher (at most every 50 ms over two seconds), not from the
    # saved text alone (saved every 0.5 s: five pieces at most).
    deltas = [e for e in result.events if e.event == "delta"]
    assert len(deltas) >= 12


def test_subscribers_on_both_processes_receive_everything(app_server, second_server, user):
    with api_client(app_server, user) as a:
        started = start_reply(a, "Two places [sim:tokens=100,tps=50]")
    results = {}

    def follow(client, key):
        with client:
            results[key] = read_stream(client, started["stream_url"])

    # Clients log in here: a thread that touches the ORM keeps a database connection open.
    threads = [
        threading.Thread(target=follow, args=(api_client(app_server, user), "a")),
        threading.Thread(target=follow, args=(api_client(second_server, user), "b")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    content = Message.objects.get(pk=started["assistant_message"]["id"]).content
    assert results["a"].text == content
    assert results["b"].text == content


def test_stop_from_another_process_ends_the_reply_early(app_server, second_server, user):
    with api_client(app_server, user) as a, api_client(second_server, user) as b:
        started = start_reply(a, "Stop me from B [sim:tokens=400,tps=20]")
        message_id = started["assistant_message"]["id"]
        stopped_at = []

        def stop_from_b(delta):
            if not stopped_at:
                stopped_at.append(time.monotonic())
                assert b.post(f"/api/messages/{message_id}/stop").status_code == 202

        result = read_stream(a, started["stream_url"], on_delta=stop_from_b)
    assert result.final.data["status"] == "cancelled"
    # Long before the reply's own end (400 tokens at 20 a second: 20 s), so the stop ended it;
    # how fast is the bench's to say, not a test's (a busy machine is slow).
    assert result.final.received_at - stopped_at[0] < 10.0
    reply = Message.objects.get(pk=message_id)
    assert reply.status == Message.Status.CANCELLED
    assert reply.content == result.text
