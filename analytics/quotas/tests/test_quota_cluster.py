"""The quota scripts on a Redis Cluster: every key one script touches is in one hash slot.

The first test runs every Lua script against a private redis-server and checks, with the CRC16
of redis-py (``redis.crc.key_slot``, what the Cluster computes), the keys each call names, the
reservation it creates (passed as an argument) and every key left in Redis. The second runs the
same work through a real three-node cluster (``QUOTA_REDIS_URL=redis+cluster://...``).
"""

import asyncio
import functools
from decimal import Decimal

import pytest
from redis.crc import key_slot

from analytics import quotas
from analytics.quotas.backends import RedisBackend
from analytics.services import CallRecord, record_call
from analytics.tests.factories import make_call_record, make_price, make_user
from chat.tests import services_process
from chat.tests.redis_topologies import redis_cluster
from core.health import _ping

PRICED = "cluster-test-model"  # $1 per million input tokens, $2 per million output tokens
SCRIPTS = ("reserve", "release", "renew", "charge", "rate", "sweep", "reconcile")

pytestmark = pytest.mark.skipif(
    bool(services_process.missing_tools(postgres=False)), reason="needs redis-server"
)


@pytest.fixture
def limited(settings, transactional_db):
    """Every meter limited (so every script has work), the Redis backend, a priced model."""
    settings.QUOTA_BACKEND = "redis"
    settings.QUOTA_REQUESTS_PER_MINUTE = 3
    settings.QUOTA_TOKENS_PER_DAY = 10_000
    settings.QUOTA_COST_PER_DAY_USD = Decimal("10")
    settings.QUOTA_COST_PER_MONTH_USD = Decimal("100")
    settings.AI_DAILY_COST_CAP_USD = Decimal("1000")
    make_price(model=PRICED, inp="1.00", cached=None, out="2.00")
    quotas.backend.cache_clear()
    yield settings
    quotas.backend.cache_clear()


def call(user, input_tokens: int, output_tokens: int) -> CallRecord:
    return make_call_record(user, input_tokens, output_tokens, model=PRICED)


def every_script_once(user, settings) -> None:
    """Reserve, renew, release, charge, rate-limit, read, sweep and reconcile: each script."""
    held = quotas.reserve(user, model=PRICED, input_tokens=100, max_tokens=400)
    quotas.check_only(user, model=PRICED, input_tokens=1, max_tokens=1)
    assert held is not None and held.renew()
    record_call(call(user, 300, 200))  # charged to the user's meters and the global one
    held.release()
    settings.QUOTA_RESERVATION_TTL_SECONDS = -1  # expired at once: the next sweep gives it back
    quotas.reserve(user, model=PRICED, input_tokens=10, max_tokens=10)
    settings.QUOTA_RESERVATION_TTL_SECONDS = 120
    quotas.user_status(user)  # reads each meter (the sweep script first)
    slots = [quotas.take_request(user) for _ in range(3)]
    with pytest.raises(quotas.QuotaExceeded):
        quotas.take_request(user)
    assert slots[0] is not None and slots[0].give_back()
    quotas.reconcile_counters()


def test_every_key_of_every_script_call_is_in_one_slot(limited):
    with services_process.redis_server(aof=False) as server:
        limited.REDIS_URL = server.url
        backend = quotas.backend()
        assert isinstance(backend, RedisBackend)
        calls: list[tuple[str, list[str]]] = []

        def spy(name, script):
            @functools.wraps(script)
            def run(keys=(), args=()):
                named = [str(k) for k in keys]
                if name == "reserve" and args[1]:
                    named.append(str(args[1]))  # the reservation hash it creates
                calls.append((name, named))
                return script(keys=keys, args=args)

            return run

        for name in SCRIPTS:
            setattr(backend, f"_{name}", spy(name, getattr(backend, f"_{name}")))
        user = make_user()
        every_script_once(user, limited)
        open_one = quotas.reserve(user, model=PRICED, input_tokens=1, max_tokens=1)
        assert open_one is not None
        stored = [key.decode() for key in server.client().scan_iter(count=1000)]

    assert {name for name, _ in calls} == set(SCRIPTS)
    for name, keys in calls:
        assert len({key_slot(k.encode()) for k in keys}) == 1, (name, keys)
    # Reserve names the user's three meters and the global one: one slot for all of them.
    assert max(len(keys) for name, keys in calls if name == "reserve") == 6
    # Everything the scripts reach, the reservations found inside the shared set included.
    assert {backend.zset, open_one.id} <= set(stored) and len(stored) == 7
    assert {key_slot(k.encode()) for k in stored} == {key_slot(calls[0][1][0].encode())}


def test_quota_checks_run_on_a_real_redis_cluster(limited):
    with redis_cluster(3) as nodes:
        limited.QUOTA_REDIS_URL = f"redis+cluster://127.0.0.1:{nodes[0].port}/0"
        limited.REDIS_URL = "redis://127.0.0.1:1/0"  # never used by the quotas: they have their own
        backend = quotas.backend()
        user = make_user()
        every_script_once(user, limited)

        tokens_today = quotas.user_meters(user.pk, quotas.limits_for(user))[0]
        # 500 charged by the recorded call; the reservations were given back.
        assert backend.value(tokens_today) == 500
        with pytest.raises(quotas.QuotaExceeded) as refused:
            quotas.reserve(user, model=PRICED, input_tokens=9000, max_tokens=501)
        assert refused.value.limit == "tokens_per_day" and refused.value.used == 500
        assert quotas.reserve(user, model=PRICED, input_tokens=9000, max_tokens=500) is not None
        # /readyz pings the quota counters' cluster too (a cluster client of its own).
        asyncio.run(_ping(limited.QUOTA_REDIS_URL))
        # The counters live on one node: the one that owns their slot.
        holding = [
            node.port
            for node in nodes
            if any(True for _ in node.client().scan_iter(match="*quota*", count=1000))
        ]
        assert len(holding) == 1
