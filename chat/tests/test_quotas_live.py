"""Quotas over real HTTP: real daphne processes, the simulator, the database and (in CI) Redis."""

import threading
import time
import uuid

import pytest
from django.conf import settings
from django.db.models import Sum

from analytics import quotas
from analytics.models import AICall
from analytics.quotas.models import QuotaEvent, UsageQuota
from chat.models import Message
from devtools.live import api_client, app_env, login_cookies, run_app_server
from devtools.sse import read_stream

from .test_streaming import start_reply, wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fresh_quota_counters"),
]


@pytest.fixture(scope="module")
def two_servers(django_db_setup, django_db_blocker, simulator, tmp_path_factory):
    """Two more daphne processes sharing the database (and Redis when REDIS_URL is set)."""
    with django_db_blocker.unblock():
        env = app_env(simulator)
    log_dir = tmp_path_factory.mktemp("quota-daphne")
    with (
        run_app_server(env=env, log_dir=log_dir) as first,
        run_app_server(env=env, log_dir=log_dir) as second,
    ):
        yield first, second


def worst_tokens(content: str) -> int:
    """The tokens a reply to ``content`` reserves in a new conversation (default config)."""
    from core.tokens import estimate_messages_tokens

    messages = [
        {"role": "system", "content": settings.AI_SYSTEM_PROMPT},
        {"role": "user", "content": content},
    ]
    return estimate_messages_tokens(messages) + settings.AI_MAX_OUTPUT_TOKENS


def post_in_new_conversation(client, content: str):
    """POST a message in a new conversation; return the response, whatever its status."""
    conversation = client.post("/api/conversations", json={}).json()
    return client.post(
        f"/api/conversations/{conversation['id']}/messages", json={"content": content}
    )


def recorded_tokens(user) -> int:
    return AICall.objects.filter(user=user).aggregate(n=Sum("total_tokens"))["n"] or 0


def test_a_message_over_the_quota_is_429_naming_the_limit_and_its_reset(app_server, user):
    UsageQuota.objects.create(user=user, tokens_per_day=50)
    with api_client(app_server, user) as client:
        response = post_in_new_conversation(client, "Hello")
        quota = client.get("/api/quota").json()
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert error["limit"] == "tokens_per_day"
    assert "daily quota of 50 tokens" in error["message"]
    assert "It resets at " in error["message"] and "00:00" in error["message"]
    assert error["resets_at"].startswith(str(quotas.user_meters(user.pk, None)[0].resets_at.date()))
    assert 0 < int(response.headers["Retry-After"]) <= 86_400
    assert not Message.objects.exists()  # nothing stored, nothing lost: the composer keeps it
    event = QuotaEvent.objects.get()
    assert (event.user_id, event.limit, event.stage) == (user.pk, "tokens_per_day", "request")
    assert quota["meters"] == [
        {
            "text": "50 of 50 tokens left today",
            "low": False,
            "limit": "tokens_per_day",
            "unit": "tokens",
            "used": 0,
            "allowed": 50,
            "remaining": 50,
            "resets_at": error["resets_at"],
        }
    ]


def add_long_exchange(conversation_id: int) -> None:
    """A long earlier exchange in the conversation, as if written before the quota was lowered."""
    from chat.models import Conversation

    stored = Conversation.objects.get(pk=conversation_id)
    earlier = Message.objects.create(conversation=stored, role="user", content="word " * 600)
    Message.objects.create(
        conversation=stored, role="assistant", reply_to=earlier, status="completed", content="ok"
    )


def test_a_generation_that_no_longer_fits_fails_with_an_sse_error(app_server, user):
    """The POST check counts the new message; the generation adds the history and refuses."""
    content = "Short question [sim:tokens=5]"
    UsageQuota.objects.create(user=user, tokens_per_day=worst_tokens(content) + 200)
    with api_client(app_server, user) as client:
        conversation = client.post("/api/conversations", json={}).json()
        add_long_exchange(conversation["id"])
        started = start_reply(client, content, conversation["id"])
        result = read_stream(client, started["stream_url"])
        message = client.get(f"/api/messages/{started['assistant_message']['id']}").json()
    assert result.final.event == "error"
    assert result.final.data["code"] == "quota_exceeded"
    assert "daily quota of" in result.final.data["message"]
    assert result.final.data["retryable"] is False
    assert "resets at" in result.final.data["message"]
    assert message["status"] == "failed"
    assert message["error"]["code"] == "quota_exceeded"
    assert not AICall.objects.exists()  # the upstream was never called
    assert QuotaEvent.objects.filter(stage="generation", limit="tokens_per_day").count() == 1


def test_fifty_concurrent_messages_against_a_quota_that_admits_ten(two_servers, user):
    # Every admitted reply holds its reservation ~10 s: longer than the 50 posts take to be
    # admitted or refused on a busy machine, so no reply ends and frees room meanwhile.
    content = "Burst [sim:tokens=30,tps=3]"
    worst = worst_tokens(content)
    UsageQuota.objects.create(user=user, tokens_per_day=10 * worst + worst // 2)
    outcomes: list[tuple[int, dict]] = []
    barrier = threading.Barrier(50, timeout=60)
    servers = list(two_servers)
    cookies = login_cookies(user)  # the threads stay off this process's database

    def post(index: int):
        with api_client(servers[index % 2], user, cookies=cookies) as client:
            conversation = client.post("/api/conversations", json={}).json()
            barrier.wait()
            response = client.post(
                f"/api/conversations/{conversation['id']}/messages", json={"content": content}
            )
            outcomes.append((response.status_code, response.json()))

    threads = [threading.Thread(target=post, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    accepted = [body for status, body in outcomes if status == 202]
    refused = [body for status, body in outcomes if status == 429]
    assert len(accepted) + len(refused) == 50
    assert all(body["error"]["code"] == "quota_exceeded" for body in refused)
    reply_ids = [body["assistant_message"]["id"] for body in accepted]
    wait_for(lambda: not Message.objects.filter(pk__in=reply_ids, status="pending").exists())
    running = Message.objects.filter(pk__in=reply_ids, status__in=["streaming", "completed"])
    failed = Message.objects.filter(pk__in=reply_ids, status="failed")
    assert running.count() == 10
    assert failed.count() == len(accepted) - 10
    assert set(failed.values_list("error_code", flat=True)) <= {"quota_exceeded"}
    wait_for(
        lambda: Message.objects.filter(pk__in=reply_ids, status="completed").count() == 10,
        timeout=60,
    )
    assert AICall.objects.filter(task_type="chat").count() == 10
    assert QuotaEvent.objects.filter(user=user).count() >= 40


def test_the_rate_limit_holds_across_two_server_processes(two_servers, user):
    UsageQuota.objects.create(user=user, requests_per_minute=5)
    statuses, errors = [], []
    for index in range(8):
        with api_client(two_servers[index % 2], user) as client:
            response = post_in_new_conversation(client, f"Ping {index} [sim:tokens=3]")
            statuses.append(response.status_code)
            if response.status_code == 429:
                errors.append(response.json()["error"])
    assert statuses == [202] * 5 + [429] * 3
    assert {e["code"] for e in errors} == {"rate_limited"}
    assert {e["limit"] for e in errors} == {"requests_per_minute"}
    assert all(0 < e["retry_after"] <= 60 for e in errors)
    assert "limit of 5 requests per minute" in errors[0]["message"]


@pytest.mark.parametrize(
    ("content", "end"),
    [
        ("Stop me [sim:tokens=300,tps=40]", "cancelled"),
        (f"Refused {uuid.uuid4().hex[:6]} [sim:status=400]", "failed"),
        ("Fine [sim:tokens=20]", "completed"),
    ],
    ids=["cancelled", "failed", "completed"],  # the same in every pytest-xdist worker
)
def test_the_reservation_settles_to_the_recorded_usage_whatever_the_end(
    app_server, user, content, end
):
    UsageQuota.objects.create(user=user, tokens_per_day=10**6)
    with api_client(app_server, user) as client:
        started = start_reply(client, content)
        if end == "cancelled":
            read_stream(client, started["stream_url"], stop_after_deltas=3)
            client.post(f"/api/messages/{started['assistant_message']['id']}/stop")
        result = read_stream(client, started["stream_url"])
    assert result.final.data["status"] == end
    backend = quotas.backend()
    wait_for(lambda: backend.open_reservations() == 0)
    if end == "completed":  # the title call after the first exchange settles too
        wait_for(lambda: AICall.objects.filter(task_type="title").exists())
        wait_for(lambda: backend.open_reservations() == 0)
    meter = quotas.user_meters(user.pk, quotas.limits_for(user))[0]
    wait_for(lambda: quotas.meter_state(meter).used == recorded_tokens(user))
    if end != "failed":
        assert recorded_tokens(user) > 0


def test_the_chat_page_shows_the_remaining_quota(app_server, user):
    UsageQuota.objects.create(user=user, tokens_per_day=12_345)
    with api_client(app_server, user) as client:
        page = client.get("/")
    assert page.status_code == 200
    assert "12,345 of 12,345 tokens left today" in page.text


def test_a_streaming_reply_renews_its_reservation_and_a_dead_servers_expires(
    app_server, simulator, user, tmp_path
):
    # 20 s, far longer than the test needs: it is killed while it streams, so nothing below
    # depends on how soon a busy machine starts or ends it.
    content = "Long one [sim:tokens=400,tps=20]"
    worst = worst_tokens(content)
    UsageQuota.objects.create(user=user, tokens_per_day=worst + worst // 2)  # one at a time
    backend = quotas.backend()
    env = app_env(simulator, QUOTA_RESERVATION_TTL_SECONDS="3")
    with run_app_server(env=env, log_dir=tmp_path) as doomed, api_client(doomed, user) as client:
        started = start_reply(client, content)
        read_stream(client, started["stream_url"], stop_after_deltas=3)
        time.sleep(4.5)  # half again the TTL: only the runner's renewals kept it
        assert backend.open_reservations() == 1
        refused = post_in_new_conversation(client, content)
        assert refused.status_code == 429  # the reservation holds the quota
        doomed.process.kill()  # SIGKILL: no release, no renewal
        doomed.process.wait()
    assert Message.objects.get(pk=started["assistant_message"]["id"]).status == "streaming"
    wait_for(lambda: backend.open_reservations() == 0, timeout=15)  # expired after the TTL
    with api_client(app_server, user) as client:  # the expired amount is given back
        started = start_reply(client, "After [sim:tokens=3]")
        assert read_stream(client, started["stream_url"]).final.data["status"] == "completed"


def test_a_reply_interrupted_by_a_server_shutdown_settles_to_its_recorded_usage(
    simulator, user, tmp_path
):
    UsageQuota.objects.create(user=user, tokens_per_day=10**6)
    backend = quotas.backend()
    # Released, not expired; the reply (10 s) outlasts the drain (core/draining.py).
    env = app_env(simulator, QUOTA_RESERVATION_TTL_SECONDS="600", CHAT_DRAIN_SECONDS="0.5")
    with run_app_server(env=env, log_dir=tmp_path) as server, api_client(server, user) as client:
        started = start_reply(client, "Shut down [sim:tokens=200,tps=20]")
        read_stream(client, started["stream_url"], stop_after_deltas=5)
        assert backend.open_reservations() == 1
        server.process.terminate()  # SIGTERM, as a deploy does
        server.process.wait(timeout=15)
    # The runner stored its end before the process exited: no sweeper, no expiry needed.
    reply = Message.objects.get(pk=started["assistant_message"]["id"])
    assert (reply.status, reply.error_code) == ("interrupted", "interrupted")
    assert len(reply.content) > 0
    call = AICall.objects.get(message=reply)
    assert (call.status, call.error_code, call.tokens_estimated) == ("error", "interrupted", True)
    assert call.output_tokens > 0
    assert backend.open_reservations() == 0
    meter = quotas.user_meters(user.pk, quotas.limits_for(user))[0]
    assert quotas.meter_state(meter).used == recorded_tokens(user) == call.total_tokens


def test_a_retry_must_fit_the_quota_like_the_first_attempt(app_server, simulator, user):
    """The first attempt stalls after the stream opened (its input is charged, estimated); the
    retry reserves its worst case again, no longer fits, and is never sent."""
    content = f"Stall {uuid.uuid4().hex[:6]} [sim:stall,after=0]"
    worst = worst_tokens(content)
    first_input = worst - settings.AI_MAX_OUTPUT_TOKENS
    UsageQuota.objects.create(user=user, tokens_per_day=worst + first_input - 1)
    simulator.clear()
    with api_client(app_server, user) as client:
        started = start_reply(client, content)
        result = read_stream(client, started["stream_url"])
    assert result.final.event == "error"
    assert result.final.data["code"] == "quota_exceeded"
    assert len([r for r in simulator.requests() if "Stall" in str(r)]) == 1
    call = AICall.objects.get(task_type="chat")
    assert call.tokens_estimated and call.input_tokens == first_input
    assert QuotaEvent.objects.filter(stage="generation").count() == 1
    assert quotas.backend().open_reservations() == 0
