"""The sidebar's reads and writes: search (full-text on PostgreSQL, LIKE on SQLite), groups by
date, pin and archive; selectors on the suite's database, the API over real HTTP."""

from datetime import timedelta

import pytest
from django.utils import timezone

from chat import selectors
from chat.models import Conversation, Message
from devtools.live import api_client


def conversation_with(user, title: str, *messages: str, days_ago: int = 0, **flags):
    conversation = Conversation.objects.create(
        user=user, title=title, updated_at=timezone.now() - timedelta(days=days_ago), **flags
    )
    for content in messages:
        Message.objects.create(conversation=conversation, role="user", content=content)
    return conversation


def titles(conversations) -> list[str]:
    return [c.title for c in conversations]


@pytest.mark.django_db
def test_search_titles_and_messages_of_the_users_own_conversations(django_user_model):
    alice = django_user_model.objects.create_user("alice2", password="x")
    mallory = django_user_model.objects.create_user("mallory2", password="x")
    conversation_with(alice, "Trip to Lisbon", "Where should I eat?")
    conversation_with(alice, "Cooking", "A recipe for pasteis de nata from Lisbon, please")
    conversation_with(alice, "Taxes", "How do deductions work?")
    conversation_with(mallory, "Lisbon secrets", "Lisbon Lisbon")
    conversation_with(alice, "Old trip", "Lisbon again", archived=True)

    assert titles(selectors.conversations_of(alice, query="lisbon")) == [
        "Cooking",
        "Trip to Lisbon",
    ]
    assert titles(selectors.conversations_of(alice, query="  LISB ")) == [
        "Cooking",
        "Trip to Lisbon",
    ]  # a prefix, any case: results while typing
    assert titles(selectors.conversations_of(alice, query="recipe nata")) == ["Cooking"]
    assert titles(selectors.conversations_of(alice, query="recipe taxes")) == []
    assert titles(selectors.conversations_of(alice, query="deduct")) == ["Taxes"]
    assert selectors.conversations_of(alice, query="nothing-like-this") == []
    assert titles(selectors.conversations_of(alice, query="lisbon", archived=True)) == ["Old trip"]
    # Punctuation and quotes are searched for, not interpreted.
    assert selectors.conversations_of(alice, query="' & | ! :*") == []
    assert titles(selectors.conversations_of(mallory, query="lisbon")) == ["Lisbon secrets"]


@pytest.mark.django_db
def test_pinned_first_then_grouped_by_date_archived_hidden(django_user_model):
    user = django_user_model.objects.create_user("dana", password="x")
    conversation_with(user, "today")
    conversation_with(user, "yesterday", days_ago=1)
    conversation_with(user, "last week", days_ago=5)
    conversation_with(user, "last month", days_ago=20)
    conversation_with(user, "long ago", days_ago=400)
    conversation_with(user, "pinned old", days_ago=100, pinned=True)
    conversation_with(user, "archived", archived=True)
    groups = selectors.sidebar_groups(selectors.conversations_of(user))
    labels = [label for label, _ in groups]
    assert labels[:5] == ["Pinned", "Today", "Yesterday", "Previous 7 days", "Previous 30 days"]
    assert len(labels) == 6 and labels[5][-4:].isdigit()  # "<Month> <year>"
    assert titles(groups[0][1]) == ["pinned old"]
    assert "archived" not in [c.title for _, members in groups for c in members]


@pytest.mark.django_db(transaction=True)
def test_api_lists_searches_pins_and_archives(app_server, user, other_user):
    theirs = conversation_with(other_user, "Their secret plan", "secret")
    with api_client(app_server, user) as client:
        first = client.post("/api/conversations", json={"title": "First plan"}).json()
        second = client.post("/api/conversations", json={"title": "Second"}).json()
        assert first["pinned"] is False and first["archived"] is False

        listed = client.get("/api/conversations").json()["conversations"]
        assert [c["id"] for c in listed] == [second["id"], first["id"]]
        assert {c["group"] for c in listed} == {"Today"}

        pinned = client.patch(f"/api/conversations/{first['id']}", json={"pinned": True})
        assert pinned.status_code == 200 and pinned.json()["pinned"] is True
        assert pinned.json()["title"] == "First plan"  # a flag alone keeps the title
        listed = client.get("/api/conversations").json()["conversations"]
        assert [(c["id"], c["group"]) for c in listed] == [
            (first["id"], "Pinned"),
            (second["id"], "Today"),
        ]

        assert client.patch(f"/api/conversations/{second['id']}", json={"archived": True}).json()[
            "archived"
        ]
        assert [c["id"] for c in client.get("/api/conversations").json()["conversations"]] == [
            first["id"]
        ]
        archived = client.get("/api/conversations?archived=true").json()["conversations"]
        assert [c["id"] for c in archived] == [second["id"]]

        found = client.get("/api/conversations", params={"q": "plan"}).json()["conversations"]
        assert [c["id"] for c in found] == [first["id"]]  # never another user's
        assert client.get("/api/conversations", params={"q": "secret"}).json() == {
            "conversations": []
        }

        for params, code in [
            ({"q": "x" * 201}, "invalid_query"),
            ({"q": "a\x00b"}, "invalid_input"),
            ({"archived": "maybe"}, "invalid_flag"),
        ]:
            response = client.get("/api/conversations", params=params)
            assert response.status_code == 400, params
            assert response.json()["error"]["code"] == code
        for body, code in [
            ({"pinned": "yes"}, "invalid_flag"),
            ({"archived": 1}, "invalid_flag"),
            ({"title": "Renamed", "pinned": None}, "invalid_flag"),
            ({}, "invalid_title"),
        ]:
            response = client.patch(f"/api/conversations/{first['id']}", json=body)
            assert response.status_code == 400, body
            assert response.json()["error"]["code"] == code
        assert (
            client.patch(f"/api/conversations/{theirs.pk}", json={"pinned": True}).status_code
            == 404
        )
    first_row = Conversation.objects.get(pk=first["id"])
    assert first_row.title == "First plan" and first_row.pinned  # refused patches changed nothing
    assert not Conversation.objects.get(pk=theirs.pk).pinned
