"""A conversation's title through the JSON API, over real HTTP against the simulator: asking the
model for a new one from the branch read (recorded, charged, retried, refused) and renaming by
hand (docs/api.md, ``/api/conversations/<id>/title``)."""

import pytest
from django.conf import settings
from django.db.models import Sum

from analytics import quotas
from analytics.models import AICall
from analytics.quotas.models import QuotaEvent, UsageQuota
from chat.models import Conversation
from chat.titles import TRANSCRIPT_PROMPT
from devtools.live import CSRF_TOKEN, api_client, app_env, run_app_server
from devtools.simulator import generate_title
from devtools.simulator_process import run_simulator
from devtools.sse import read_stream

from .factories import make_conversation, make_reply
from .test_streaming import start_reply, wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fresh_quota_counters"),
]


def title_url(conversation_id: int) -> str:
    return f"/api/conversations/{conversation_id}/title"


def title_calls(conversation_id: int) -> list[tuple[int, str, str]]:
    return list(
        AICall.objects.filter(conversation_id=conversation_id, task_type="title")
        .order_by("created_at", "id")
        .values_list("attempt", "status", "error_code")
    )


def recorded_tokens(user) -> int:
    return AICall.objects.filter(user=user).aggregate(n=Sum("total_tokens"))["n"] or 0


def exchange(conversation, question: str, answer: str):
    """A question and its completed reply, stored directly (no AI call)."""
    return make_reply(conversation, "completed", question=question, content=answer)


def test_a_new_title_comes_from_the_branch_read_and_is_recorded_and_charged(
    app_server, simulator, user
):
    UsageQuota.objects.create(user=user, tokens_per_day=10**6)
    with api_client(app_server, user) as client:
        started = start_reply(client, "How do Python decorators work [sim:tokens=5]")
        conversation_id = started["conversation_id"]
        read_stream(client, started["stream_url"])
        # The first exchange's title call (as before this endpoint).
        wait_for(lambda: len(title_calls(conversation_id)) == 1)

        # A name by hand: cleaned, and marked as not the stand-in.
        renamed = client.patch(title_url(conversation_id), json={"title": "  My \n  own   name "})
        assert renamed.status_code == 200, renamed.text
        assert (renamed.json()["title"], renamed.json()["title_generated"]) == ("My own name", True)

        # Edit the first message: the branch read is now about something else.
        edited = client.post(
            f"/api/messages/{started['user_message']['id']}/edit",
            json={"content": "Explain Rust ownership rules [sim:tokens=5]"},
        )
        assert edited.status_code == 202, edited.text
        reply = read_stream(client, edited.json()["stream_url"])
        assert reply.final.event == "done"

        simulator.clear()
        response = client.post(title_url(conversation_id), headers={"X-Request-ID": "retitle-1"})
        assert response.status_code == 200, response.text
        body = response.json()

    # One title request, of the branch read: the edited question and its reply, no marker.
    (request,) = simulator.requests()
    assert request["messages"][0] == {"role": "system", "content": TRANSCRIPT_PROMPT}
    assert request["messages"][1]["content"] == (
        "User: Explain Rust ownership rules\n\nAssistant: " + " ".join(reply.text.split())
    )
    expected = generate_title("Explain Rust ownership rules", request["model"])
    assert body["title"] == expected and body["title_generated"] is True
    # It replaced the hand-written name (asked for by its owner).
    assert Conversation.objects.get(pk=conversation_id).title == expected

    # Recorded like every call, with the request's id, and charged to the user's quota.
    assert title_calls(conversation_id) == [(1, "ok", ""), (1, "ok", "")]
    call = AICall.objects.get(request_id="retitle-1")
    assert (call.task_type, call.user_id, call.message_id) == ("title", user.pk, None)
    assert call.total_tokens > 0
    backend = quotas.backend()
    wait_for(lambda: backend.open_reservations() == 0)
    meter = quotas.user_meters(user.pk, quotas.limits_for(user))[0]
    wait_for(lambda: quotas.meter_state(meter).used == recorded_tokens(user))


def test_title_requests_are_refused_with_a_clear_error(app_server, simulator, user, other_user):
    theirs = make_conversation(other_user, title="Theirs")
    exchange(theirs, "Secret plans", "Noted.")
    empty = make_conversation(user, title="Nothing yet")
    with api_client(app_server, user) as client:
        simulator.clear()
        for method in ("post", "patch"):
            for conversation_id in (theirs.pk, 999_999):
                response = getattr(client, method)(title_url(conversation_id), json={"title": "x"})
                assert response.status_code == 404, (method, conversation_id)
                assert response.json()["error"]["code"] == "not_found"

        response = client.post(title_url(empty.pk))
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "nothing_to_name"

        # A reply being written: no title from a branch that is still changing.
        busy = start_reply(client, "A long one [sim:tokens=2000,tps=20]")
        response = client.post(title_url(busy["conversation_id"]))
        assert response.status_code == 409
        error = response.json()["error"]
        assert error["code"] == "reply_in_progress" and "Wait for the reply" in error["message"]
        assert (
            client.post(f"/api/messages/{busy['assistant_message']['id']}/stop").status_code == 202
        )
        read_stream(client, busy["stream_url"])

        # Bad input, by hand or not.
        url = title_url(empty.pk)
        for body, code in [
            ({"title": ""}, "invalid_title"),
            ({"title": "   "}, "invalid_title"),
            ({"title": 7}, "invalid_title"),
            ({}, "invalid_title"),
            ({"title": "x" * 201}, "invalid_title"),
            ({"title": "nul \u0000 here"}, "invalid_input"),
        ]:
            response = client.patch(url, json=body)
            assert response.status_code == 400, body
            assert response.json()["error"]["code"] == code, body
        for method in ("post", "patch"):
            response = getattr(client, method)(
                url, content=b"{", headers={"Content-Type": "application/json"}
            )
            assert (
                response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"
            )
        assert client.get(url).status_code == 405
        longest = client.patch(url, json={"title": "y" * 200})
        assert longest.status_code == 200 and longest.json()["title"] == "y" * 200

    # The CSRF token but no session: 401.
    with api_client(app_server, user, cookies={"csrftoken": CSRF_TOKEN}) as anonymous:
        response = anonymous.post(title_url(empty.pk))
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"

    # None of it reached the model, and nothing was renamed.
    assert not [r for r in simulator.requests() if "title" in r["messages"][0]["content"].lower()]
    assert Conversation.objects.get(pk=theirs.pk).title == "Theirs"
    assert not AICall.objects.filter(task_type="title").exists()


def test_over_the_quota_a_new_title_is_429_and_the_model_is_not_called(app_server, simulator, user):
    conversation = make_conversation(user, title="Kept", title_generated=True)
    exchange(conversation, "Hello there", "Hi! How can I help?")
    UsageQuota.objects.create(user=user, tokens_per_day=10)
    simulator.clear()
    with api_client(app_server, user) as client:
        response = client.post(title_url(conversation.pk))
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert (error["code"], error["limit"]) == ("quota_exceeded", "tokens_per_day")
    assert int(response.headers["Retry-After"]) > 0
    assert simulator.requests() == []
    assert not AICall.objects.exists()
    event = QuotaEvent.objects.get()
    assert (event.stage, event.user_id) == ("title", user.pk)
    assert Conversation.objects.get(pk=conversation.pk).title == "Kept"


@pytest.fixture(scope="module")
def failing_titles(django_db_setup, django_db_blocker, tmp_path_factory):
    """An app whose simulator fails the first 5 title requests of each text with a 503 (the
    chat's own requests are served normally)."""
    fault = "title,status=503,fail_first=5"
    with run_simulator("--ttft-ms", "20", "--tps", "200", "--fault", fault) as sim:
        with django_db_blocker.unblock():
            env = app_env(sim)
        with run_app_server(env=env, log_dir=tmp_path_factory.mktemp("titles")) as server:
            yield server


def test_a_failing_title_call_is_retried_then_502_and_the_title_stays(failing_titles, user):
    attempts = settings.AI_MAX_RETRIES + 1
    assert attempts < 5 < 2 * attempts  # one request fails throughout, the next one succeeds
    conversation = make_conversation(user, title="Kept", title_generated=True)
    exchange(conversation, "Tell me about sourdough starters", "Flour, water and patience.")
    with api_client(failing_titles, user) as client:
        failed = client.post(title_url(conversation.pk))
        assert failed.status_code == 502, failed.text
        error = failed.json()["error"]
        assert error["code"] == "upstream_unavailable" and error["retryable"] is True
        assert error["message"].startswith("The title could not be generated:")
        assert Conversation.objects.get(pk=conversation.pk).title == "Kept"

        retried = client.post(title_url(conversation.pk))
        assert retried.status_code == 200, retried.text
    failures = [(n, "error", "upstream_unavailable") for n in range(1, attempts + 1)]
    assert title_calls(conversation.pk) == [
        *failures,
        *failures[: 5 - attempts],
        (5 - attempts + 1, "ok", ""),
    ]
    assert retried.json()["title"] == Conversation.objects.get(pk=conversation.pk).title != "Kept"
