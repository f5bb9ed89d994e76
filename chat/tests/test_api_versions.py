"""Versions and branches through the JSON API, over real HTTP against the simulator: the branch
read, select, edit, and what is sent upstream and recorded (docs/api.md)."""

import pytest

from analytics.models import AICall
from chat.models import Message
from devtools.live import api_client
from devtools.sse import read_stream

from .test_streaming import start_reply

pytestmark = pytest.mark.django_db(transaction=True)


def branch(client, conversation_id: int) -> list[dict]:
    response = client.get(f"/api/conversations/{conversation_id}/messages")
    assert response.status_code == 200, response.text
    return response.json()["messages"]


def sent_upstream(simulator) -> list[list[str]]:
    """The user/assistant contents of each chat request the simulator got (titles left out)."""
    return [
        [m["content"] for m in request["messages"] if m["role"] != "system"]
        for request in simulator.requests()
        if not any("title" in m["content"].lower() for m in request["messages"][:1])
    ]


def test_regenerate_select_and_edit_through_the_api(app_server, simulator, user):
    with api_client(app_server, user) as client:
        started = start_reply(client, "first [sim:tokens=5]")
        conversation_id = started["conversation_id"]
        read_stream(client, started["stream_url"])
        second = start_reply(client, "second [sim:tokens=5]", conversation_id)
        read_stream(client, second["stream_url"])
        old_reply = second["assistant_message"]["id"]

        regenerated = client.post(f"/api/messages/{old_reply}/regenerate").json()
        read_stream(client, regenerated["stream_url"])
        messages = branch(client, conversation_id)
        assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
        last = messages[-1]
        assert last["id"] == regenerated["assistant_message"]["id"]
        assert last["versions"] == {"count": 2, "index": 2, "ids": [old_reply, last["id"]]}
        assert last["parent"] == second["user_message"]["id"]

        # Choose the first version: the answer is the branch, and a reload reads the same.
        chosen = client.post(f"/api/messages/{old_reply}/select")
        assert chosen.status_code == 200, chosen.text
        assert chosen.json()["messages"][-1]["id"] == old_reply
        assert chosen.json()["current_leaf"] == old_reply
        assert branch(client, conversation_id)[-1]["versions"]["index"] == 1
        assert client.get(f"/api/messages/{old_reply}").json()["status"] == "completed"

        # Edit the first message: a new branch, whose context is the edit alone.
        simulator.clear()
        first_user = started["user_message"]["id"]
        edited = client.post(
            f"/api/messages/{first_user}/edit",
            json={"content": "first, edited [sim:tokens=30,tps=60]"},
        )
        assert edited.status_code == 202, edited.text
        body = edited.json()
        assert body["user_message"]["parent"] is None
        # Its stream resumes with Last-Event-ID like any reply's.
        part = read_stream(client, body["stream_url"], stop_after_deltas=3)
        rest = read_stream(client, body["stream_url"], last_event_id=part.events[-1].id)
        assert rest.final.event == "done"
        stored = client.get(f"/api/messages/{body['assistant_message']['id']}").json()
        assert part.text + rest.text == stored["content"]
        messages = branch(client, conversation_id)
        assert [m["content"] for m in messages][:1] == ["first, edited [sim:tokens=30,tps=60]"]
        assert len(messages) == 2
        assert messages[0]["versions"]["ids"] == [first_user, body["user_message"]["id"]]
        assert sent_upstream(simulator)[0] == ["first, edited [sim:tokens=30,tps=60]"]

        # Back to the old branch through the first message's versions: all of it, as chosen.
        back = client.post(f"/api/messages/{first_user}/select").json()["messages"]
        assert [m["id"] for m in back][-1] == old_reply and len(back) == 4

    # Every upstream call is recorded, whichever branch it belongs to.
    assert AICall.objects.filter(task_type="chat", conversation_id=conversation_id).count() == 4


def test_versions_api_refuses_bad_input_and_other_users(app_server, user, other_user):
    with api_client(app_server, other_user) as client:
        theirs = start_reply(client, "private [sim:tokens=5]")
        read_stream(client, theirs["stream_url"])
    with api_client(app_server, user) as client:
        mine = start_reply(client, "mine [sim:tokens=2000,tps=20]")
        reply_id = mine["assistant_message"]["id"]
        user_id = mine["user_message"]["id"]
        # While the reply is being written: no switching, no edit.
        busy = client.post(f"/api/messages/{user_id}/select")
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "reply_in_progress"
        busy = client.post(f"/api/messages/{user_id}/edit", json={"content": "x"})
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "reply_in_progress"
        assert client.post(f"/api/messages/{reply_id}/stop").status_code == 202
        read_stream(client, mine["stream_url"])

        for url in (
            f"/api/messages/{theirs['user_message']['id']}/select",
            f"/api/messages/{theirs['user_message']['id']}/edit",
        ):
            response = client.post(url, json={"content": "hijack"})
            assert response.status_code == 404, url
        assert (
            client.get(f"/api/conversations/{theirs['conversation_id']}/messages").status_code
            == 404
        )

        refused = client.post(f"/api/messages/{reply_id}/edit", json={"content": "x"})
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "not_a_user_message"
        for body, code in [({"content": ""}, "empty_content"), ({}, "invalid_content")]:
            response = client.post(f"/api/messages/{user_id}/edit", json=body)
            assert response.status_code == 400 and response.json()["error"]["code"] == code
        response = client.post(
            f"/api/messages/{user_id}/edit",
            content=b"{",
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"
        assert client.get(f"/api/messages/{user_id}/select").status_code == 405
    assert Message.objects.filter(conversation_id=mine["conversation_id"]).count() == 2
