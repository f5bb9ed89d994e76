"""Per-process caches of prices and limits (core.localcache): hits, invalidation, expiry."""

import time
from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission

from analytics import quotas
from analytics.models import ModelPrice
from analytics.pricing import PRICES, price_for
from analytics.quotas.models import UsageQuota
from analytics.tests.factories import make_price, make_user
from core.localcache import LocalCache

pytestmark = pytest.mark.django_db

DAY = date(2026, 6, 1)


@pytest.fixture(autouse=True)
def _cached(settings):
    settings.CONFIG_CACHE_SECONDS = 60


def test_a_price_is_read_once_then_served_from_memory(django_assert_num_queries):
    make_price("cache-model", inp="1.00")
    with django_assert_num_queries(1):
        assert price_for("cache-model", DAY).input_per_million == Decimal("1.00")
        assert price_for("cache-model", DAY).input_per_million == Decimal("1.00")
        assert price_for("other-model", DAY) is None


def test_a_price_saved_in_this_process_applies_at_once():
    price = make_price("cache-model", inp="1.00")
    assert price_for("cache-model", DAY).input_per_million == Decimal("1.00")
    price.input_per_million = Decimal("3.00")
    price.save()
    assert price_for("cache-model", DAY).input_per_million == Decimal("3.00")
    make_price("cache-*", inp="9.00")  # a new prefix price: the list is read again
    assert price_for("cache-other", DAY).input_per_million == Decimal("9.00")
    price.delete()
    assert price_for("cache-model", DAY).input_per_million == Decimal("9.00")


def test_a_change_without_signals_applies_after_the_ttl(settings, monkeypatch):
    # What another process's change looks like here: no signal, only the clock. The clock is
    # moved on by the test (it only ever goes forward), so a slow machine changes nothing.
    settings.CONFIG_CACHE_SECONDS = 5
    real, ahead = time.monotonic, [0.0]
    monkeypatch.setattr(time, "monotonic", lambda: real() + ahead[0])
    make_price("cache-model", inp="1.00")
    assert price_for("cache-model", DAY).input_per_million == Decimal("1.00")
    ModelPrice.objects.filter(model="cache-model").update(input_per_million=Decimal("2.00"))
    ahead[0] = 4.0
    assert price_for("cache-model", DAY).input_per_million == Decimal("1.00")
    ahead[0] = 5.5
    assert price_for("cache-model", DAY).input_per_million == Decimal("2.00")


def test_zero_seconds_reads_every_time(settings, django_assert_num_queries):
    settings.CONFIG_CACHE_SECONDS = 0
    make_price("cache-model")
    with django_assert_num_queries(2):
        price_for("cache-model", DAY)
        price_for("cache-model", DAY)


def test_limits_are_read_once_per_user(django_assert_num_queries):
    alice, bob = make_user(), make_user()
    UsageQuota.objects.create(user=alice, tokens_per_day=1000)
    alice, bob = type(alice).objects.get(pk=alice.pk), type(bob).objects.get(pk=bob.pk)
    with django_assert_num_queries(4):  # the exemption and the quota rows, per user
        assert quotas.limits_for(alice).tokens_per_day == 1000
        assert quotas.limits_for(bob).tokens_per_day is None
        assert quotas.limits_for(alice).tokens_per_day == 1000
        assert quotas.limits_for(bob).tokens_per_day is None


def test_what_limits_derive_from_clears_them(settings):
    alice = make_user()
    assert quotas.limits_for(alice).tokens_per_day is None
    # The user's own row.
    own = UsageQuota.objects.create(user=alice, tokens_per_day=1000)
    assert quotas.limits_for(alice).tokens_per_day == 1000
    own.delete()
    # A group's row, then joining the group.
    group = Group.objects.create(name="limited")
    UsageQuota.objects.create(group=group, requests_per_minute=7)
    assert quotas.limits_for(alice).requests_per_minute is None
    alice.groups.add(group)
    assert quotas.limits_for(alice).requests_per_minute == 7
    # The exemption permission, given to the user.
    exempt = Permission.objects.get(content_type__app_label="quotas", codename="exempt_from_quotas")
    alice = type(alice).objects.get(pk=alice.pk)  # has_perm caches on the instance
    alice.user_permissions.add(exempt)
    alice = type(alice).objects.get(pk=alice.pk)
    assert quotas.limits_for(alice).exempt
    alice.user_permissions.remove(exempt)
    alice = type(alice).objects.get(pk=alice.pk)
    assert not quotas.limits_for(alice).exempt
    # The settings' defaults.
    settings.QUOTA_TOKENS_PER_DAY = 5000
    assert quotas.limits_for(alice).tokens_per_day == 5000


def test_a_value_loaded_while_the_cache_was_emptied_is_not_kept():
    # Another thread's change empties the cache while this thread is reading the old rows.
    cache = LocalCache("test-straddle")

    def load_old_rows():
        cache.clear()
        return "old"

    assert cache.get("k", load_old_rows) == "old"
    assert cache.get("k", lambda: "new") == "new"


def test_a_change_empties_the_cache_again_when_it_commits(django_capture_on_commit_callbacks):
    make_price("cache-model", inp="1.00")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        price = ModelPrice.objects.get(model="cache-model")
        price.input_per_million = Decimal("5.00")
        price.save()
        # A thread that read the committed rows before this commit caches them now.
        stale = ModelPrice(model="cache-model", input_per_million=1, effective_from=DAY)
        PRICES.get("all", lambda: [stale])
        assert price_for("cache-model", DAY).input_per_million == 1
    assert callbacks  # the commit emptied it again
    assert price_for("cache-model", DAY).input_per_million == Decimal("5.00")


def test_saving_a_user_forgets_only_that_users_limits(django_assert_num_queries):
    alice, bob = make_user(), make_user()
    quotas.limits_for(alice), quotas.limits_for(bob)
    alice.last_login = alice.date_joined
    alice.save(update_fields=["last_login"])  # what every login does
    # Alice's limits are read again (two queries: the exemption, the quota rows), Bob's are
    # still cached (emptying the whole cache would make this four).
    with django_assert_num_queries(2):
        quotas.limits_for(alice)
        quotas.limits_for(bob)
