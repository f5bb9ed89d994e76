"""The channel layer spread over three Redis instances (CHANNEL_REDIS_URLS): two daphne
processes, replies followed and stopped across them, and each reply's group on the instance
channels-redis hashes it to (so the keys really are spread: docs/deploy.md "Redis at scale").

Every Redis here is one the test starts itself; never the shared one.
"""

import threading

import httpx
import pytest
from channels_redis.utils import _consistent_hash

from chat import streaming
from chat.models import Message
from devtools.live import api_client, app_env, run_app_server
from devtools.sse import read_stream

from . import services_process
from .test_streaming import start_reply, wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        bool(services_process.missing_tools(postgres=False)), reason="needs redis-server"
    ),
]

PREFIX = "sharded"
INSTANCES = 3


@pytest.fixture(scope="module")
def shards():
    with (
        services_process.redis_server(aof=False) as first,
        services_process.redis_server(aof=False) as second,
        services_process.redis_server(aof=False) as third,
    ):
        yield [first, second, third]


@pytest.fixture(scope="module")
def pair(django_db_setup, django_db_blocker, simulator, shards, tmp_path_factory):
    """Processes A and B, their channel layer over the three instances."""
    with django_db_blocker.unblock():
        env = app_env(
            simulator,
            REDIS_URL=shards[0].url,
            CHANNEL_REDIS_URLS=",".join(shard.url for shard in shards),
            CHANNEL_LAYER_PREFIX=PREFIX,
            QUOTA_BACKEND="database",
        )
    with (
        run_app_server(env=env, log_dir=tmp_path_factory.mktemp("daphne-a")) as a,
        run_app_server(env=env, log_dir=tmp_path_factory.mktemp("daphne-b")) as b,
    ):
        yield a, b


def holders(shards, message_id: int) -> list[int]:
    """The instances (indexes) that hold the reply's group key now."""
    key = f"{PREFIX}:group:{streaming.group_name(message_id)}"
    found = []
    for index, shard in enumerate(shards):
        with shard.client() as client:
            if client.exists(key):
                found.append(index)
    return found


def test_replies_followed_from_the_other_process_arrive_exactly(pair, shards, user):
    a, b = pair
    used: set[int] = set()
    with api_client(a, user) as posting, api_client(b, user) as following:
        # Replies until their groups have landed on at least two instances (ids hash apart).
        for attempt in range(12):
            started = start_reply(posting, f"Sharded {attempt} [sim:tokens=60,tps=30]")
            message_id = started["assistant_message"]["id"]
            expected = _consistent_hash(streaming.group_name(message_id), INSTANCES)
            results: dict = {}

            def follow(url=started["stream_url"], into=results):
                into["b"] = read_stream(following, url)

            thread = threading.Thread(target=follow)
            thread.start()
            # While B follows A's reply, its membership is a key on the hashed instance only.
            assert wait_for(lambda mid=message_id: holders(shards, mid)) == [expected]
            thread.join(30)
            result = results["b"]
            assert result.final.event == "done" and result.final.data["status"] == "completed"
            assert result.text == Message.objects.get(pk=message_id).content
            # Live from A's publisher (every 50 ms over two seconds), not the saved text alone.
            assert len([e for e in result.events if e.event == "delta"]) >= 12
            used.add(expected)
            if len(used) >= 2:
                break
    assert len(used) >= 2


def test_reconnect_and_stop_on_the_other_process(pair, user):
    a, b = pair
    with api_client(a, user) as on_a, api_client(b, user) as on_b:
        started = start_reply(on_a, "Across shards [sim:tokens=400,tps=40]")
        message_id = started["assistant_message"]["id"]
        first = read_stream(on_a, started["stream_url"], stop_after_deltas=5)

        def stop_from_b(delta):
            if not stopped:
                stopped.append(True)
                assert on_b.post(f"/api/messages/{message_id}/stop").status_code == 202

        stopped: list[bool] = []
        # The reconnect lands on B (the rest of the reply, from the offset it has); the stop
        # asked of B reaches A's runner through A's channel, on whichever instance it hashes to.
        second = read_stream(
            on_b, started["stream_url"], last_event_id=first.events[-1].id, on_delta=stop_from_b
        )
    assert second.final.data["status"] == "cancelled"
    reply = Message.objects.get(pk=message_id)
    assert first.text + second.text == reply.content


@pytest.mark.fault
def test_readyz_fails_while_one_channel_instance_is_down(pair, shards):
    a, _ = pair

    def readyz() -> httpx.Response:
        return httpx.get(f"{a.base_url}/readyz", timeout=10)

    assert readyz().status_code == 200
    shards[2].kill()  # not REDIS_URL: only the channel layer uses it
    try:
        down = readyz()
        assert down.status_code == 503 and down.json()["failing"] == ["redis"]
    finally:
        shards[2].start()
    assert wait_for(lambda: readyz().status_code == 200)
