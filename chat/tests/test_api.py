"""Bad input and permissions of the JSON API, over real HTTP."""

import httpx
import pytest

from chat.models import Conversation, Message
from devtools.live import api_client, login_cookies
from devtools.sse import iter_sse, read_stream

from .test_streaming import start_reply

pytestmark = pytest.mark.django_db(transaction=True)


def test_unauthenticated_requests_get_401_json(app_server):
    with httpx.Client(base_url=app_server.base_url) as client:
        for method, url in [
            ("GET", "/api/conversations"),
            ("POST", "/api/conversations/1/messages"),
            ("GET", "/api/messages/1/stream"),
            ("POST", "/api/messages/1/stop"),
        ]:
            response = client.request(method, url)
            assert response.status_code in (401, 403), (method, url)
            assert response.json()["error"]["code"] in ("not_authenticated", "csrf_failed")
        page = client.get("/")
        assert page.status_code == 302 and "/accounts/login/" in page.headers["location"]


def test_missing_csrf_token_is_refused_with_json(app_server, user):
    with httpx.Client(base_url=app_server.base_url, cookies=login_cookies(user)) as client:
        response = client.post("/api/conversations", json={})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"
    assert not Conversation.objects.exists()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"content": ""}, "empty_content"),
        ({"content": "   \n "}, "empty_content"),
        ({"content": 42}, "invalid_content"),
        ({}, "invalid_content"),
        ({"content": "x" * 16001}, "content_too_long"),
    ],
)
def test_bad_message_content_is_400(app_server, user, body, code):
    with api_client(app_server, user) as client:
        conversation = client.post("/api/conversations", json={}).json()
        response = client.post(f"/api/conversations/{conversation['id']}/messages", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert not Message.objects.exists()


def test_malformed_json_is_400(app_server, user):
    with api_client(app_server, user) as client:
        conversation = client.post("/api/conversations", json={}).json()
        response = client.post(
            f"/api/conversations/{conversation['id']}/messages",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_a_second_message_while_a_reply_streams_is_409(app_server, user):
    with api_client(app_server, user) as client:
        started = start_reply(client, "Slow one [sim:tokens=200,tps=20]")
        response = client.post(
            f"/api/conversations/{started['conversation_id']}/messages", json={"content": "again"}
        )
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "reply_in_progress"
        client.post(f"/api/messages/{started['assistant_message']['id']}/stop")
        read_stream(client, started["stream_url"])


def test_other_users_conversations_and_messages_are_404(app_server, user, other_user):
    with api_client(app_server, user) as client:
        started = start_reply(client, "Mine [sim:tokens=5]")
        read_stream(client, started["stream_url"])
    conversation_id = started["conversation_id"]
    message_id = started["assistant_message"]["id"]
    with api_client(app_server, other_user) as intruder:
        assert intruder.get(f"/c/{conversation_id}/").status_code == 404
        assert intruder.get(f"/api/conversations/{conversation_id}").status_code == 404
        assert (
            intruder.patch(f"/api/conversations/{conversation_id}", json={"title": "x"}).status_code
            == 404
        )
        assert intruder.delete(f"/api/conversations/{conversation_id}").status_code == 404
        assert (
            intruder.post(
                f"/api/conversations/{conversation_id}/messages", json={"content": "hi"}
            ).status_code
            == 404
        )
        assert intruder.get(f"/api/messages/{message_id}").status_code == 404
        assert intruder.get(f"/api/messages/{message_id}/stream").status_code == 404
        assert intruder.post(f"/api/messages/{message_id}/stop").status_code == 404
        assert intruder.post(f"/api/messages/{message_id}/regenerate").status_code == 404
        assert intruder.get("/api/conversations").json() == {"conversations": []}
    assert Conversation.objects.get(pk=conversation_id).messages.count() == 2


def test_invalid_last_event_id_is_400(app_server, user):
    with api_client(app_server, user) as client:
        started = start_reply(client, "Hi [sim:tokens=5]")
        bad = client.get(started["stream_url"], headers={"Last-Event-ID": "abc"})
        read_stream(client, started["stream_url"])
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_offset"


def test_rename_and_delete_a_conversation(app_server, user):
    with api_client(app_server, user) as client:
        created = client.post("/api/conversations", json={"title": "First"}).json()
        renamed = client.patch(f"/api/conversations/{created['id']}", json={"title": "  Renamed  "})
        assert renamed.status_code == 200 and renamed.json()["title"] == "Renamed"
        empty = client.patch(f"/api/conversations/{created['id']}", json={"title": ""})
        assert empty.status_code == 400
        listed = client.get("/api/conversations").json()["conversations"]
        assert [c["title"] for c in listed] == ["Renamed"]
        assert client.delete(f"/api/conversations/{created['id']}").status_code == 204
        assert client.get(f"/api/conversations/{created['id']}").status_code == 404


def test_deleting_a_conversation_mid_stream_stops_the_reply(app_server, user):
    with api_client(app_server, user) as client:
        started = start_reply(client, "Delete me [sim:tokens=300,tps=30]")
        first = read_stream(client, started["stream_url"], stop_after_deltas=2)
        assert first.events
        watcher = api_client(app_server, user)
        follow = watcher.stream("GET", started["stream_url"])
        response = follow.__enter__()
        assert client.delete(f"/api/conversations/{started['conversation_id']}").status_code == 204
        events = [e for e in iter_sse(response) if not isinstance(e, str)]
        follow.__exit__(None, None, None)
        watcher.close()
    assert not Message.objects.filter(pk=started["assistant_message"]["id"]).exists()
    assert events[-1].event == "error"
    assert events[-1].data["code"] == "not_found" and events[-1].data["retryable"] is False


def test_an_offset_beyond_the_text_gets_nothing_twice(app_server, user):
    with api_client(app_server, user) as client:
        started = start_reply(client, "Offsets [sim:tokens=60,tps=30,ttft=300]")
        ahead = read_stream(client, started["stream_url"], last_event_id="40")
        content = client.get(f"/api/messages/{started['assistant_message']['id']}").json()[
            "content"
        ]
    assert ahead.final.event == "done"
    assert ahead.text == content[40:]


def test_emoji_offsets_count_code_points(app_server, user):
    with api_client(app_server, user) as client:
        started = start_reply(client, "Emoji 😀🎉 test [sim:tokens=40,tps=80]")
        first = read_stream(client, started["stream_url"], stop_after_deltas=8)
        rest = read_stream(client, started["stream_url"], last_event_id=first.events[-1].id)
        content = client.get(f"/api/messages/{started['assistant_message']['id']}").json()[
            "content"
        ]
    assert "😀🎉" in content
    assert first.text + rest.text == content
    assert int(first.events[-1].id) == len(first.text)
