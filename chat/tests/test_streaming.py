"""The streaming API end to end: a real daphne process, the simulator over real HTTP."""

import threading
import time

import pytest
from django.conf import settings

from analytics.models import AICall
from chat.models import Conversation, Message
from devtools.live import api_client, app_env, run_app_server
from devtools.sse import read_stream

pytestmark = pytest.mark.django_db(transaction=True)


def start_reply(client, content: str, conversation_id: int | None = None) -> dict:
    if conversation_id is None:
        created = client.post("/api/conversations", json={})
        assert created.status_code == 201, created.text
        conversation_id = created.json()["id"]
    response = client.post(
        f"/api/conversations/{conversation_id}/messages", json={"content": content}
    )
    assert response.status_code == 202, response.text
    body = response.json()
    body["conversation_id"] = conversation_id
    return body


def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_reply_streams_token_by_token_and_is_recorded_once(app_server, user):
    with api_client(app_server, user) as client:
        # 50 ms a token: a reader on a busy machine keeps up (at 10 ms it fell behind, and
        # what queued up meanwhile came as one event: 14 of 40 at load 13).
        started = start_reply(client, "Tell me about streaming [sim:tokens=40,tps=20]")
        result = read_stream(client, started["stream_url"])

    assert result.status == 200
    assert result.headers["content-type"].startswith("text/event-stream")
    assert result.headers["cache-control"] == "no-cache"
    assert result.headers["x-accel-buffering"] == "no"
    deltas = [e for e in result.events if e.event == "delta"]
    assert len(deltas) >= 20, "the reply arrived in a few large pieces, not token by token"
    # Each id is the character offset after its delta.
    offset = 0
    for delta in deltas:
        offset += len(delta.data["text"])
        assert int(delta.id) == offset
    # The deltas arrived spread over the generation, not in one burst at the end.
    assert deltas[-1].received_at - deltas[0].received_at > 0.1

    done = result.final
    assert done.event == "done"
    assert done.data["status"] == "completed"
    assert done.data["model"] == "gpt-4o-mini"
    assert done.data["usage"]["output_tokens"] == 40
    assert done.data["ttft_ms"] is not None and done.data["latency_ms"] >= done.data["ttft_ms"]
    assert "<" in done.data["html"]

    reply = Message.objects.get(pk=started["assistant_message"]["id"])
    assert reply.status == Message.Status.COMPLETED
    assert reply.content == result.text
    calls = AICall.objects.filter(message=reply)
    assert calls.count() == 1
    call = calls.get()
    assert call.status == "ok"
    assert call.task_type == "chat"
    assert call.output_tokens == 40 and not call.tokens_estimated
    assert call.input_tokens > 0
    assert call.base_url_host == "127.0.0.1"
    assert call.request_id

    # After the first exchange the model names the conversation (a separate `title` call).
    title_call = wait_for(
        lambda: AICall.objects.filter(
            conversation_id=started["conversation_id"], task_type="title"
        ).first()
    )
    assert title_call.status == "ok" and not title_call.streamed
    conversation = wait_for(
        lambda: Conversation.objects.filter(
            pk=started["conversation_id"], title_generated=True
        ).first()
    )
    assert conversation.title


def test_reconnect_with_last_event_id_gets_exactly_the_rest(app_server, user):
    with api_client(app_server, user) as client:
        started = start_reply(client, "Resume me [sim:tokens=80,tps=60]")
        first = read_stream(client, started["stream_url"], stop_after_deltas=5)
        assert first.final is None
        last_id = first.events[-1].id
        assert int(last_id) == len(first.text)
        second = read_stream(client, started["stream_url"], last_event_id=last_id)

    assert second.final.event == "done"
    reply = Message.objects.get(pk=started["assistant_message"]["id"])
    assert first.text + second.text == reply.content
    assert second.events[0].event == "delta"


def test_two_subscribers_both_receive_everything(app_server, user):
    with api_client(app_server, user) as client:
        started = start_reply(client, "Fan out [sim:tokens=60,tps=80]")
    results = [None, None]
    # Log in here: a thread that touches the ORM would keep its own database connection open.
    clients = [api_client(app_server, user) for _ in range(2)]

    def subscribe(index):
        with clients[index] as own:
            results[index] = read_stream(own, started["stream_url"])

    threads = [threading.Thread(target=subscribe, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    reply = Message.objects.get(pk=started["assistant_message"]["id"])
    for result in results:
        assert result.final.event == "done"
        assert result.text == reply.content


def test_finished_reply_streams_whole_text_and_done_at_once(app_server, user):
    with api_client(app_server, user) as client:
        started = start_reply(client, "Short one [sim:tokens=12]")
        read_stream(client, started["stream_url"])
        again = read_stream(client, started["stream_url"])
        tail = read_stream(client, started["stream_url"], last_event_id="5")
        message = client.get(f"/api/messages/{started['assistant_message']['id']}").json()
    assert [e.event for e in again.events] == ["delta", "done"]
    assert again.text == message["content"]
    assert tail.text == message["content"][5:]
    assert message["status"] == "completed"
    assert message["usage"]["output_tokens"] == 12


def test_stop_cancels_and_keeps_the_partial_text(app_server, user):
    with api_client(app_server, user) as client:
        started = start_reply(client, "Long answer please [sim:tokens=400,tps=20]")
        message_id = started["assistant_message"]["id"]
        stopped_at = []

        def stop_once(delta):
            if not stopped_at and int(delta.id) > 0:
                stopped_at.append(time.monotonic())
                response = client.post(f"/api/messages/{message_id}/stop")
                assert response.status_code == 202, response.text

        result = read_stream(client, started["stream_url"], on_delta=stop_once)
        assert result.final.event == "done"
        assert result.final.data["status"] == "cancelled"
        # Long before the reply's own end (20 s): the stop ended it (not timed to the second).
        assert result.final.received_at - stopped_at[0] < 10.0
        again = client.post(f"/api/messages/{message_id}/stop")
        assert again.status_code == 409

    reply = Message.objects.get(pk=message_id)
    assert reply.status == Message.Status.CANCELLED
    assert reply.content and reply.content == result.text
    call = AICall.objects.get(message=reply)
    assert call.status == "cancelled"
    # The upstream sent no usage for the cut stream: the tokens are estimated, never zero.
    assert call.tokens_estimated and call.output_tokens > 0 and call.input_tokens > 0


def test_regenerate_makes_a_new_reply_to_the_same_message(app_server, user):
    with api_client(app_server, user) as client:
        started = start_reply(client, "Say something [sim:tokens=10]")
        read_stream(client, started["stream_url"])
        old_id = started["assistant_message"]["id"]
        response = client.post(f"/api/messages/{old_id}/regenerate")
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["assistant_message"]["id"] != old_id
        assert body["user_message"]["id"] == started["user_message"]["id"]
        result = read_stream(client, body["stream_url"])
    assert result.final.data["status"] == "completed"
    new = Message.objects.get(pk=body["assistant_message"]["id"])
    assert new.reply_to_id == started["user_message"]["id"]
    assert (
        AICall.objects.filter(task_type="chat", conversation_id=started["conversation_id"]).count()
        == 2
    )


@pytest.mark.skipif(
    not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
    reason="the connection pool exists on PostgreSQL",
)
def test_open_streams_hold_no_database_connection(simulator, user, tmp_path):
    # A pool of 4 connections and 8 streams open at once: a stream that kept its request's
    # connection would starve the others (and the runners) until the pool timed out.
    env = app_env(
        simulator,
        DB_POOL_MAX_SIZE="4",
        DB_POOL_MIN_SIZE="1",
        DB_POOL_TIMEOUT_SECONDS="3",
        CHAT_DB_THREADS="2",
    )
    with run_app_server(env=env, log_dir=tmp_path) as server:
        clients = [api_client(server, user) for _ in range(8)]
        started = [
            start_reply(c, f"Pool {i} [sim:tokens=60,tps=20]") for i, c in enumerate(clients)
        ]
        results = [None] * 8

        def follow(i):
            try:
                results[i] = read_stream(clients[i], started[i]["stream_url"], timeout=60)
            finally:
                clients[i].close()

        threads = [threading.Thread(target=follow, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
    assert [r.final.data.get("status") for r in results] == ["completed"] * 8, [
        r.final.data for r in results
    ]


def test_who_may_open_a_stream_while_the_reply_is_generated(app_server, user, other_user):
    """The posting session opens it without a lookup; another session of the owner after one;
    another user's session, an unknown session and none at all never."""
    from devtools.live import CSRF_TOKEN

    with api_client(app_server, user) as client:
        started = start_reply(client, "Slow one [sim:tokens=60,tps=20]")
        url = started["stream_url"]
        with (
            api_client(app_server, user) as second_session,
            api_client(app_server, other_user) as intruder,
            api_client(
                app_server, user, cookies={"sessionid": "x" * 32, "csrftoken": CSRF_TOKEN}
            ) as forged,
        ):
            assert second_session.cookies["sessionid"] != client.cookies["sessionid"]
            assert intruder.get(url).status_code == 404
            assert forged.get(url).status_code == 401
            assert forged.get(url).json()["error"]["code"] == "not_authenticated"
            with second_session.stream("GET", url) as other_view:
                assert other_view.status_code == 200
            # The posting session's stream: the whole reply.
            result = read_stream(client, url)
        assert result.final.event == "done"
        # Once the reply is stored, the same session goes through the lookup like any other.
        assert read_stream(client, url).text == result.text
