"""The upgrade to hash-tagged quota keys (``<prefix>:{quota}:...``, docs/quotas.md "On a Redis
Cluster"): counters under the old names are neither read nor written any more and expire on
their own; the new ones start from the recorded calls; ``reconcile_quotas`` makes good a call
that an old process charged to an old key after the new one was seeded."""

import io
from decimal import Decimal

import pytest
from django.core.management import call_command

from analytics import quotas
from analytics.services import CallRecord, record_call
from analytics.tests.factories import make_call_record, make_price, make_user
from chat.tests import services_process

PRICED = "upgrade-test-model"

pytestmark = pytest.mark.skipif(
    bool(services_process.missing_tools(postgres=False)), reason="needs redis-server"
)


def call(user, input_tokens: int, output_tokens: int) -> CallRecord:
    return make_call_record(user, input_tokens, output_tokens, model=PRICED)


def test_old_counters_are_left_to_expire_and_new_ones_start_from_the_recorded_calls(
    settings, transactional_db
):
    make_price(model=PRICED, inp="1.00", cached=None, out="2.00")
    settings.QUOTA_BACKEND = "redis"
    settings.QUOTA_TOKENS_PER_DAY = 10_000
    settings.QUOTA_COST_PER_DAY_USD = Decimal("10")
    settings.QUOTA_COST_PER_MONTH_USD = Decimal("100")
    with services_process.redis_server(aof=False) as server:
        settings.REDIS_URL = server.url
        quotas.backend.cache_clear()
        try:
            user = make_user()
            record_call(call(user, 700, 300))  # recorded before the upgrade: 1,000 tokens
            meter = quotas.user_meters(user.pk, quotas.limits_for(user))[0]
            new_key = meter.key
            old_key = new_key.replace(":{quota}:", ":quota:")
            assert old_key != new_key
            redis = server.client()
            # What the previous release left: its counter (with a reservation held) and its TTL.
            redis.set(old_key, 1500, ex=meter.ttl)
            redis.delete(new_key)  # the new release's counter does not exist yet

            assert quotas.user_status(user)["meters"][0].used == 1000  # seeded from the rows
            assert int(redis.get(old_key)) == 1500  # never touched again...
            assert 0 < redis.ttl(old_key) <= meter.ttl  # ...and gone when its period is

            # An old process still draining charges its last call to the old key only.
            record_call(call(user, 100, 100))
            redis.decrby(new_key, 200)  # as if the new counter never saw that charge
            assert int(redis.get(new_key)) == 1000
            out = io.StringIO()
            call_command("reconcile_quotas", stdout=out)
            assert int(redis.get(new_key)) == 1200
            assert "Raised 1 quota counters" in out.getvalue()
        finally:
            quotas.backend.cache_clear()
