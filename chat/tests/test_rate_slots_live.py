"""A post refused after it took a rate-limit slot gives it back: real daphne processes racing."""

import threading

import pytest

from analytics.quotas.models import UsageQuota
from chat.models import Message
from devtools.live import api_client, app_env, login_cookies, run_app_server

from .test_quotas_live import post_in_new_conversation
from .test_streaming import wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fresh_quota_counters"),
]

RACERS = 8  # posts racing into one conversation, split over the two servers
# Requests per minute: as many as the racers, so no racer is refused for the rate while the
# losers hold their slots (between taking one and giving it back).
LIMIT = RACERS


@pytest.fixture(scope="module")
def racing_servers(django_db_setup, django_db_blocker, simulator, tmp_path_factory):
    """Two daphne processes, each storing up to four posts at once (CHAT_DB_THREADS)."""
    with django_db_blocker.unblock():
        env = app_env(simulator, CHAT_DB_THREADS="4")
    log_dir = tmp_path_factory.mktemp("slot-daphne")
    with (
        run_app_server(env=env, log_dir=log_dir) as first,
        run_app_server(env=env, log_dir=log_dir) as second,
    ):
        yield first, second


def race_into_one_conversation(servers, user) -> list[tuple[int, dict]]:
    """POST RACERS messages into one new conversation at once; return (status, body) of each."""
    cookies = login_cookies(user)
    with api_client(servers[0], user, cookies=cookies) as client:
        conversation = client.post("/api/conversations", json={}).json()
    url = f"/api/conversations/{conversation['id']}/messages"
    outcomes: list[tuple[int, dict]] = []
    barrier = threading.Barrier(RACERS, timeout=60)

    def post(index: int):
        with api_client(servers[index % 2], user, cookies=cookies) as client:
            client.get("/api/quota")  # the connection is open before the start
            barrier.wait()
            # The winner's reply lasts about 6 s, longer than the race: a racer that came after
            # a short reply had ended would rightly be accepted (seen on SQLite, where the
            # racers' transactions queue for the one write lock).
            response = client.post(url, json={"content": f"Racer {index} [sim:tokens=30,tps=5]"})
            outcomes.append((response.status_code, response.json()))

    threads = [threading.Thread(target=post, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_the_losers_of_a_race_into_one_conversation_give_their_slots_back(racing_servers, user):
    UsageQuota.objects.create(user=user, requests_per_minute=LIMIT)
    outcomes = race_into_one_conversation(racing_servers, user)
    statuses = sorted(status for status, _ in outcomes)
    assert statuses == [202] + [409] * (RACERS - 1), outcomes
    assert {body["error"]["code"] for status, body in outcomes if status == 409} == {
        "reply_in_progress"
    }
    # Only the winner counts: LIMIT - 1 more posts this minute, then 429.
    with api_client(racing_servers[1], user) as client:
        later = [
            post_in_new_conversation(client, f"Later {i} [sim:tokens=3]") for i in range(LIMIT)
        ]
    assert [r.status_code for r in later] == [202] * (LIMIT - 1) + [429]
    assert later[-1].json()["error"]["code"] == "rate_limited"
    wait_for(
        lambda: not Message.objects.filter(status__in=Message.IN_PROGRESS).exists(), timeout=30
    )
