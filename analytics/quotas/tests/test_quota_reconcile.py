"""No quota charge is lost to a Redis outage: with its own redis-server (AOF on, so a restart
keeps the counters), calls recorded while Redis is killed are missing from the counters until
the monitor, a real process, reconciles them from the AICall rows."""

import os
import time
from decimal import Decimal

import pytest
from django.db.models import Sum

from analytics import quotas
from analytics.models import AICall, JobState
from analytics.quotas.reconcile import REQUEST
from analytics.services import CallRecord, record_call
from analytics.tests.factories import make_call_record, make_price, make_user
from chat.tests import services_process
from chat.tests.test_monitor_outage import monitor_process, wait_for
from devtools.live import database_url

PRICED = "reconcile-test-model"  # $1 per million input tokens, $2 per million output tokens


def call(user, input_tokens: int, output_tokens: int) -> CallRecord:
    return make_call_record(user, input_tokens, output_tokens, model=PRICED)


@pytest.fixture
def redis_server(settings, transactional_db):
    with services_process.redis_server(aof=True) as server:
        settings.REDIS_URL = server.url
        settings.QUOTA_BACKEND = "redis"
        settings.QUOTA_TOKENS_PER_DAY = 1_000_000
        settings.QUOTA_COST_PER_DAY_USD = Decimal("100")
        settings.QUOTA_COST_PER_MONTH_USD = Decimal("1000")
        settings.AI_DAILY_COST_CAP_USD = Decimal("1000")
        quotas.backend.cache_clear()
        yield server
        quotas.backend.cache_clear()


def counters(user) -> dict[str, int | None]:
    meters = [*quotas.user_meters(user.pk, None), quotas.global_meter()]
    raw = {m.limit: quotas.backend().client.get(m.key) for m in meters}
    return {limit: None if value is None else int(value) for limit, value in raw.items()}


def recorded(user) -> dict[str, int]:
    calls = AICall.objects.filter(user=user).aggregate(t=Sum("total_tokens"), c=Sum("cost_usd"))
    micro = int(calls["c"] * 1_000_000)
    return {
        "tokens_per_day": calls["t"],
        "cost_per_day": micro,
        "cost_per_month": micro,
        "global_daily_cost": micro,
    }


@pytest.mark.fault
def test_charges_lost_while_redis_was_down_are_reconciled_by_the_monitor(redis_server, tmp_path):
    make_price(model=PRICED, inp="1.00", cached=None, out="2.00")
    user = make_user()
    # A reply in flight through the outage: its reservation (200 tokens, $0.0003) stays counted.
    held = quotas.reserve(user, model=PRICED, input_tokens=100, max_tokens=100)
    record_call(call(user, 1000, 500))  # charged: 1,500 tokens, $0.002
    assert counters(user)["tokens_per_day"] == 1500 + 200

    heartbeat = tmp_path / "heartbeat"
    env = {
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_server.url,
        "QUOTA_BACKEND": "redis",
        "MONITOR_HEARTBEAT_FILE": str(heartbeat),
        "CHANNEL_LAYER_PREFIX": os.environ["CHANNEL_LAYER_PREFIX"],  # the same counter keys
        "LOG_FORMAT": "console",
        "LOG_LEVEL": "INFO",
    }
    log_path = tmp_path / "monitor.log"
    with monitor_process(env, log_path):
        wait_for(heartbeat.exists, timeout=30, what="the monitor's first pass")

        redis_server.kill()
        for _ in range(3):  # recorded, but their charges fail: 9,000 tokens, $0.012
            record_call(call(user, 2000, 1000))
        assert JobState.objects.filter(name=REQUEST).exists()  # the monitor is asked
        time.sleep(1)  # a few passes of the monitor with Redis down
        beat = heartbeat.stat().st_mtime
        time.sleep(1)
        assert heartbeat.stat().st_mtime == beat  # no heartbeat while a job fails

        redis_server.start()  # with the counters it had (AOF): the three calls are missing
        expected = {
            k: v + (200 if k == "tokens_per_day" else 300) for k, v in recorded(user).items()
        }
        wait_for(
            lambda: counters(user) == expected,
            timeout=20,
            what=f"the counters {counters(user)} to reach {expected}",
        )
        wait_for(lambda: heartbeat.stat().st_mtime > beat, timeout=10, what="a new heartbeat")
    held.release()
    assert counters(user) == recorded(user)  # the day's counters equal the recorded usage
    assert recorded(user)["tokens_per_day"] == 1500 + 3 * 3000
    assert not JobState.objects.filter(name=REQUEST).exists()
    log = log_path.read_text()
    assert log.count("redis unavailable since") == 1, log
    assert log.count("redis available again after") == 1, log
    assert log.count("raised 4 quota counters to the recorded usage") == 1, log
    assert "Traceback" not in log, log


def test_reconciliation_never_lowers_a_counter_and_skips_missing_ones(redis_server):
    make_price(model=PRICED, inp="1.00", cached=None, out="2.00")
    user, other = make_user(), make_user()
    quotas.check_only(user, model=PRICED, input_tokens=0, max_tokens=100)  # seeds
    record_call(call(user, 1000, 0))
    record_call(call(other, 1000, 0))
    missing = quotas.user_meters(other.pk, None)[0].key
    quotas.backend().client.delete(missing)  # e.g. expired: seeded again on its first use
    key = quotas.user_meters(user.pk, None)[0].key
    quotas.backend().client.incrby(key, 50)  # an over-count (e.g. a seeding race)
    assert quotas.reconcile_counters() == 0
    assert int(quotas.backend().client.get(key)) == 1050
    assert quotas.backend().client.get(missing) is None
    # Nothing asked, no outage seen: the monitor's job does nothing.
    assert quotas.reconcile_if_requested(seen_outage=False) is None
