"""Bad input to every JSON endpoint gets a JSON 400, never an HTML 500, on either database.

Over real HTTP against a daphne process; run with DATABASE_URL set for PostgreSQL (which
refuses NUL characters with a DataError where SQLite stores them).
"""

import pytest

from analytics.quotas.models import UsageQuota
from chat.models import Conversation, Message
from devtools.live import api_client
from devtools.sse import read_stream
from experiments.models import Feedback

from .test_streaming import start_reply

pytestmark = pytest.mark.django_db(transaction=True)

JSON = {"Content-Type": "application/json"}
NESTED = b"[" * 100_000 + b"]" * 100_000  # RecursionError in json.loads
NESTED_OBJECT = b'{"content": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_001
HUGE_INTEGER = b'{"content": ' + b"9" * 5000 + b"}"  # past Python's int-from-text limit
LONE_SURROGATE = "\\ud800"  # as a JSON escape: json.loads gives a str no database can encode


def raw(text: str) -> bytes:
    """A JSON body written by hand (httpx's json= cannot encode a lone surrogate)."""
    return text.encode()


def assert_error(response, status: int, code: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    if field is not None:
        assert error["field"] == field, error
        assert f"'{field}'" in error["message"]
    return error


@pytest.fixture
def finished_reply(app_server, user):
    with api_client(app_server, user) as client:
        started = start_reply(client, "Rate me [sim:tokens=3]")
        assert read_stream(client, started["stream_url"]).final.event == "done"
    return started


def test_malformed_bodies_are_400_invalid_json_on_every_endpoint(app_server, user, finished_reply):
    conversation_id = finished_reply["conversation_id"]
    reply_id = finished_reply["assistant_message"]["id"]
    endpoints = [
        ("POST", "/api/conversations"),
        ("PATCH", f"/api/conversations/{conversation_id}"),
        ("POST", f"/api/conversations/{conversation_id}/messages"),
        ("POST", f"/api/messages/{reply_id}/feedback"),
    ]
    bodies = [NESTED, NESTED_OBJECT, HUGE_INTEGER, b"[1, 2]", b'"text"', b"\xff\xfe", b"{"]
    with api_client(app_server, user) as client:
        for method, url in endpoints:
            for body in bodies:
                response = client.request(method, url, content=body, headers=JSON)
                assert_error(response, 400, "invalid_json")
    assert Conversation.objects.count() == 1
    assert Message.objects.count() == 2
    assert not Feedback.objects.exists()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"rating": ["up"]}, "invalid_rating"),  # unhashable: was a TypeError, an HTML 500
        ({"rating": {"up": 1}}, "invalid_rating"),
        ({"rating": True}, "invalid_rating"),
        ({"rating": 1.5}, "invalid_rating"),
        ({"rating": None}, "invalid_rating"),
        ({}, "invalid_rating"),
        ({"rating": "up", "comment": 5}, "invalid_comment"),
        ({"rating": "up", "comment": ["a"]}, "invalid_comment"),
    ],
)
def test_wrong_types_in_feedback_are_400(app_server, user, finished_reply, body, code):
    with api_client(app_server, user) as client:
        response = client.post(
            f"/api/messages/{finished_reply['assistant_message']['id']}/feedback", json=body
        )
    assert_error(response, 400, code)
    assert not Feedback.objects.exists()


def test_wrong_types_in_titles_and_content_are_400(app_server, user):
    with api_client(app_server, user) as client:
        for title in (["a"], {"a": 1}, 7, True, "   "):
            response = client.post("/api/conversations", json={"title": title})
            assert_error(response, 400, "invalid_title")
        conversation = client.post("/api/conversations", json={"title": "Kept"}).json()
        url = f"/api/conversations/{conversation['id']}"
        for body in ({"title": ["a"]}, {"title": 7}, {"title": None}, {}):
            assert_error(client.patch(url, json=body), 400, "invalid_title")
        for content in (["hi"], {"text": "hi"}, None, 3.5, False):
            response = client.post(f"{url}/messages", json={"content": content})
            assert_error(response, 400, "invalid_content")
    assert Conversation.objects.get().title == "Kept"
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    ("text", "what"),
    [("a\\u0000b", "NUL character"), (f"a{LONE_SURROGATE}b", "lone surrogate")],
)
def test_unstorable_text_is_400_invalid_input_naming_the_field(
    app_server, user, finished_reply, text, what
):
    conversation_id = finished_reply["conversation_id"]
    reply_id = finished_reply["assistant_message"]["id"]
    with api_client(app_server, user) as client:
        created = client.post("/api/conversations", content=raw(f'{{"title": "{text}"}}'))
        assert what in assert_error(created, 400, "invalid_input", "title")["message"]
        renamed = client.patch(
            f"/api/conversations/{conversation_id}", content=raw(f'{{"title": "{text}"}}')
        )
        assert_error(renamed, 400, "invalid_input", "title")
        posted = client.post(
            f"/api/conversations/{conversation_id}/messages",
            content=raw(f'{{"content": "{text}"}}'),
        )
        assert_error(posted, 400, "invalid_input", "content")
        rated = client.post(
            f"/api/messages/{reply_id}/feedback",
            content=raw(f'{{"rating": "up", "comment": "{text}"}}'),
        )
        assert_error(rated, 400, "invalid_input", "comment")
        # The same request without the bad character works: nothing was left half-done.
        good = client.post(
            f"/api/messages/{reply_id}/feedback", json={"rating": "up", "comment": "ab"}
        )
        assert good.status_code == 200, good.text
    assert Conversation.objects.count() == 1
    assert Conversation.objects.get().title != "ab"
    assert Message.objects.count() == 2
    assert Feedback.objects.get().comment == "ab"


def test_a_refused_post_takes_no_rate_limit_slot(app_server, user):
    UsageQuota.objects.create(user=user, requests_per_minute=1)
    bad_bodies = [
        raw('{"content": "nul \\u0000 here"}'),
        raw(f'{{"content": "{LONE_SURROGATE}"}}'),
        raw('{"content": ""}'),
        raw('{"content": ["list"]}'),
        NESTED,
    ]
    with api_client(app_server, user) as client:
        conversation = client.post("/api/conversations", json={}).json()
        url = f"/api/conversations/{conversation['id']}/messages"
        for body in bad_bodies:
            assert client.post(url, content=body, headers=JSON).status_code == 400
        accepted = client.post(url, json={"content": "The one that counts [sim:tokens=3]"})
        assert accepted.status_code == 202, accepted.text
        read_stream(client, accepted.json()["stream_url"])
        # The limit is in force: the next good post is the one refused.
        other = client.post("/api/conversations", json={}).json()
        refused = client.post(
            f"/api/conversations/{other['id']}/messages", json={"content": "one more"}
        )
        assert_error(refused, 429, "rate_limited")
    assert Message.objects.filter(role=Message.Role.USER).count() == 1
