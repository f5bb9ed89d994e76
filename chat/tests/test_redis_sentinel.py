"""The app through Redis Sentinel (REDIS_SENTINELS; the URLs name the master): a master, its
replica and three Sentinels (quorum 2) as real processes, two daphne processes. Replies cross
processes and the quota counters are kept through the master that Sentinel names; after the
master is killed and Sentinel promotes the replica, new replies and quota checks work again, on
the new master.

Every Redis here is one the test starts itself; never the shared one.
"""

import threading

import httpx
import pytest
from django.db.models import Sum

from analytics import quotas
from analytics.models import AICall
from chat.models import Message
from devtools.live import api_client, app_env, database_url, run_app_server
from devtools.sse import read_stream

from . import services_process
from .redis_topologies import MASTER_NAME, sentinel_group, wait_until
from .test_streaming import start_reply, wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        bool(services_process.missing_tools(postgres=False)), reason="needs redis-server"
    ),
]

PREFIX = "sentinel"


@pytest.fixture(scope="module")
def group():
    with sentinel_group(3) as running:
        yield running


@pytest.fixture(scope="module")
def sentinel_env(django_db_setup, django_db_blocker, simulator, group):
    _, _, sentinels = group
    with django_db_blocker.unblock():
        return app_env(
            simulator,
            REDIS_URL=f"redis://{MASTER_NAME}/0",
            REDIS_SENTINELS=",".join(f"127.0.0.1:{s.port}" for s in sentinels),
            CHANNEL_LAYER_PREFIX=PREFIX,
            QUOTA_BACKEND="redis",
            QUOTA_TOKENS_PER_DAY="1000000",
        )


@pytest.fixture(scope="module")
def pair(sentinel_env, tmp_path_factory):
    with (
        run_app_server(env=sentinel_env, log_dir=tmp_path_factory.mktemp("daphne-a")) as a,
        run_app_server(env=sentinel_env, log_dir=tmp_path_factory.mktemp("daphne-b")) as b,
    ):
        yield a, b


def tokens_counter(server: services_process.RedisServer, user) -> int:
    """The user's tokens-today counter as that Redis holds it (0: none)."""
    key = quotas.user_meters(user.pk, None)[0].key  # with this test process's prefix
    key = PREFIX + key[key.index(":{quota}:") :]
    with server.client() as client:
        value = client.get(key)
    return int(value) if value is not None else 0


def recorded_tokens(user) -> int:
    """The user's recorded usage (every AICall: the replies and the title call)."""
    return AICall.objects.filter(user=user).aggregate(n=Sum("total_tokens"))["n"] or 0


def titles_recorded(user) -> int:
    """Title calls recorded (one after each conversation's first reply, charged after it)."""
    return AICall.objects.filter(user=user, task_type="title").count()


def followed_from_b(a, b, user, content: str) -> int:
    """Post on A, follow the whole reply from B; check it arrived exactly; return its id."""
    with api_client(a, user) as on_a, api_client(b, user) as on_b:
        started = start_reply(on_a, content)
        results = {}
        thread = threading.Thread(
            target=lambda: results.setdefault("b", read_stream(on_b, started["stream_url"]))
        )
        thread.start()
        thread.join(30)
    message_id = started["assistant_message"]["id"]
    result = results["b"]
    assert result.final.event == "done" and result.final.data["status"] == "completed"
    assert result.text == Message.objects.get(pk=message_id).content
    return message_id


def ready(server) -> bool:
    try:
        response = httpx.get(f"{server.base_url}/readyz", timeout=10)
    except httpx.TimeoutException:
        return False  # still waiting on the old master's address: not ready yet
    return response.status_code == 200 and response.json()["checks"]["redis"]["ok"]


def test_the_cache_goes_through_sentinel(group, sentinel_env):
    master, _, _ = group
    script = (
        "from django.core.cache import cache; cache.set('probe', 42); print(cache.get('probe'))"
    )
    out = services_process.manage(database_url(), "shell", "-c", script, env=sentinel_env)
    assert out.strip().splitlines()[-1] == "42"
    with master.client() as client:
        assert client.exists(f"{PREFIX}:1:probe")


@pytest.mark.fault
def test_replies_and_quotas_through_sentinel_survive_a_failover(group, pair, user):
    master, replica, sentinels = group
    a, b = pair
    assert ready(a) and ready(b)
    followed_from_b(a, b, user, "Through Sentinel [sim:tokens=40,tps=40]")
    # The reply's and its title call's reservations, charges and releases (after the reply's
    # last event: waited for) went to the master Sentinel names, and on to its replica: the
    # counter is the recorded usage.
    wait_for(lambda: titles_recorded(user) == 1, timeout=30)
    charged = recorded_tokens(user)
    assert charged > 0
    wait_until(lambda: tokens_counter(master, user) == charged, what="the charge", timeout=30)
    wait_until(lambda: tokens_counter(replica, user) == charged, what="replication", timeout=30)

    master.kill()
    wait_until(lambda: sentinels[0].master_port() == replica.port, what="the failover", timeout=60)
    wait_for(lambda: ready(a) and ready(b), timeout=30)

    followed_from_b(a, b, user, "After the failover [sim:tokens=40,tps=40]")
    # Quota checks and charges work again, on the promoted replica.
    wait_for(lambda: titles_recorded(user) == 2, timeout=30)
    assert recorded_tokens(user) > charged
    wait_until(
        lambda: tokens_counter(replica, user) == recorded_tokens(user),
        what="the charge on the promoted replica",
        timeout=30,
    )
