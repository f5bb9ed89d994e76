"""A post that asks for its reply's events in its own response (``Accept: text/event-stream``),
over real HTTP: one request instead of a 202 and a GET of ``stream_url``."""

import pytest

from analytics.models import AICall
from analytics.quotas.models import UsageQuota
from chat.models import Message
from devtools.live import api_client
from devtools.sse import read_stream

from .test_quotas_live import add_long_exchange, worst_tokens
from .test_streaming import start_reply

pytestmark = pytest.mark.django_db(transaction=True)


def _new_conversation(client) -> int:
    created = client.post("/api/conversations", json={})
    assert created.status_code == 201, created.text
    return created.json()["id"]


def _post_reading(client, conversation: int, content: str, **kwargs):
    """Post ``content`` asking for the reply's stream, and read it (devtools.sse.read_stream)."""
    url = f"/api/conversations/{conversation}/messages"
    return read_stream(client, url, method="POST", json={"content": content}, **kwargs)


def test_a_post_that_asks_for_the_stream_gets_its_reply_in_the_response(app_server, user):
    with api_client(app_server, user) as client:
        conversation = _new_conversation(client)
        result = _post_reading(client, conversation, "One request [sim:tokens=40,tps=200]")
    assert result.status == 200
    assert result.headers["content-type"].startswith("text/event-stream")
    assert result.headers["x-accel-buffering"] == "no"
    accepted = result.events[0]
    assert accepted.event == "accepted" and accepted.id is None
    reply = Message.objects.get(pk=accepted.data["assistant_message"]["id"])
    question = Message.objects.get(pk=accepted.data["user_message"]["id"])
    # The same body a 202 carries.
    assert accepted.data["assistant_message"]["status"] == "streaming"
    assert accepted.data["stream_url"] == f"/api/messages/{reply.pk}/stream"
    assert accepted.data["user_message"]["content"] == question.content
    assert question.conversation_id == reply.conversation_id == conversation
    assert [e.event for e in result.events[1:-1]] == ["delta"] * (len(result.events) - 2)
    assert result.final.event == "done" and result.final.data["status"] == "completed"
    assert result.offsets_contiguous()
    assert result.text == reply.content and reply.status == Message.Status.COMPLETED
    assert AICall.objects.filter(message=reply).count() == 1


def test_regenerate_and_edit_stream_their_reply_too(app_server, user):
    with api_client(app_server, user) as client:
        first = start_reply(client, "First [sim:tokens=10,tps=200]")
        done = read_stream(client, first["stream_url"])
        assert done.final.event == "done"
        reply_id = first["assistant_message"]["id"]
        again = read_stream(client, f"/api/messages/{reply_id}/regenerate", method="POST", json={})
        edited = read_stream(
            client,
            f"/api/messages/{first['user_message']['id']}/edit",
            method="POST",
            json={"content": "Edited [sim:tokens=12,tps=200]"},
        )
    for result in (again, edited):
        assert result.status == 200 and result.events[0].event == "accepted"
        new_reply = Message.objects.get(pk=result.events[0].data["assistant_message"]["id"])
        assert result.final.event == "done" and result.text == new_reply.content
    regenerated = Message.objects.get(pk=again.events[0].data["assistant_message"]["id"])
    assert regenerated.pk != reply_id and regenerated.reply_to_id == first["user_message"]["id"]
    assert edited.events[0].data["user_message"]["content"] == "Edited [sim:tokens=12,tps=200]"


def test_a_refused_post_is_a_json_error_even_when_it_asks_for_a_stream(app_server, user):
    stream = {"Accept": "text/event-stream"}
    with api_client(app_server, user) as client:
        conversation = _new_conversation(client)
        url = f"/api/conversations/{conversation}/messages"
        empty = client.post(url, json={"content": "  "}, headers=stream)
        running = client.post(url, json={"content": "Slow [sim:tokens=200,tps=20]"})
        busy = client.post(url, json={"content": "Another"}, headers=stream)
        missing = client.post(
            "/api/conversations/999999/messages", json={"content": "x"}, headers=stream
        )
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "empty_content"
    assert running.status_code == 202
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "reply_in_progress"
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    # Only the one accepted post stored its message.
    assert Message.objects.filter(role="user").count() == 1


def test_a_post_stream_cut_off_resumes_from_its_last_offset(app_server, user):
    with api_client(app_server, user) as client:
        conversation = _new_conversation(client)
        cut = _post_reading(
            client, conversation, "Cut me off [sim:tokens=80,tps=40]", stop_after_deltas=5
        )
        stream_url = cut.events[0].data["stream_url"]
        last = cut.events[-1].id
        rest = read_stream(client, stream_url, last_event_id=last)
    reply = Message.objects.get(pk=cut.events[0].data["assistant_message"]["id"])
    assert rest.final.event == "done"
    assert cut.text + rest.text == reply.content  # nothing lost, nothing twice
    assert rest.offsets_contiguous(start=int(last))


def test_a_reply_its_quota_refuses_ends_the_post_stream_with_the_error(
    app_server, user, fresh_quota_counters
):
    """The post's check counts the new message; the reply's plan adds the history and refuses
    (as in test_quotas_live): the stream that the post opened ends with that error."""
    content = "Short question [sim:tokens=5]"
    UsageQuota.objects.create(user=user, tokens_per_day=worst_tokens(content) + 200)
    with api_client(app_server, user) as client:
        conversation = _new_conversation(client)
        add_long_exchange(conversation)
        result = _post_reading(client, conversation, content)
    assert [e.event for e in result.events] == ["accepted", "error"]
    assert result.events[0].data["assistant_message"]["status"] == "failed"
    assert result.final.data["code"] == "quota_exceeded"
    assert result.final.data["retryable"] is False
    assert not AICall.objects.exists()
