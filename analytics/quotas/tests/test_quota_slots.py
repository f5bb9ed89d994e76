"""A request's rate-limit slot given back (a post refused after it took one), on both backends."""

import threading
import time
import types

import pytest
from django.db import connection

from analytics import quotas
from analytics.quotas import backends
from analytics.quotas.models import QuotaCounter
from analytics.tests.factories import make_user

from .test_quotas import backend  # noqa: F401 (the fixture: database, and Redis with REDIS_URL)


@pytest.fixture
def clock(monkeypatch):
    """The backends' clock, moved by hand: ``clock.now`` is its epoch seconds."""
    fake = types.SimpleNamespace(now=time.time())
    fake.time = lambda: fake.now
    monkeypatch.setattr(backends, "time", fake)
    return fake


def refused(user) -> bool:
    try:
        quotas.take_request(user)
    except quotas.QuotaExceeded as exc:
        assert exc.code == "rate_limited"
        return True
    return False


def test_a_slot_given_back_frees_that_slot_once(backend, settings):  # noqa: F811
    settings.QUOTA_REQUESTS_PER_MINUTE = 2
    user, other = make_user(), make_user()
    first, second = quotas.take_request(user), quotas.take_request(user)
    others = quotas.take_request(other)
    assert refused(user)
    assert first.give_back() is True
    assert quotas.take_request(user) is not None  # the freed slot
    assert first.give_back() is False  # exactly once: a second call frees nothing more...
    assert quotas.RequestSlot(first.key, first.member).give_back() is False  # ...nor a copy
    assert refused(user)
    assert second.member != first.member
    assert others.give_back() is True  # another user's log is their own
    assert refused(user)


def test_a_slot_given_back_after_the_window_rolled_over_frees_nothing(
    backend,  # noqa: F811
    settings,
    clock,
):
    settings.QUOTA_REQUESTS_PER_MINUTE = 1
    user = make_user()
    old = quotas.take_request(user)
    clock.now += 61  # the old slot has left the window; a new request takes the only slot
    new = quotas.take_request(user)
    assert old.give_back() is False  # nothing of it left to free...
    assert refused(user)  # ...and the new request's slot is still taken
    clock.now += 61
    assert quotas.take_request(user) is not None
    assert new.give_back() is False
    assert refused(user)  # never below zero: still one slot of one per minute


def test_a_slot_given_back_late_but_before_it_was_pruned_is_harmless(
    backend,  # noqa: F811
    settings,
    clock,
):
    """The slot is past the window but still in the log (nothing pruned it yet)."""
    settings.QUOTA_REQUESTS_PER_MINUTE = 1
    user = make_user()
    old = quotas.take_request(user)
    clock.now += 61
    old.give_back()
    assert quotas.take_request(user) is not None
    assert refused(user)  # one request per minute, not two


def test_concurrent_give_backs_free_each_slot_once(backend, settings):  # noqa: F811
    settings.QUOTA_REQUESTS_PER_MINUTE = 10
    user = make_user()
    slots = [quotas.take_request(user) for _ in range(10)]
    assert refused(user)
    freed: list[bool] = []
    barrier = threading.Barrier(20, timeout=30)

    def give_back(slot):
        try:
            barrier.wait()
            freed.append(slot.give_back())
        finally:
            connection.close()

    # Two copies of each slot, given back at once: as if two code paths both gave it back.
    twins = [quotas.RequestSlot(slot.key, slot.member) for slot in slots]
    threads = [threading.Thread(target=give_back, args=(slot,)) for slot in slots + twins]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(freed) == [False] * 10 + [True] * 10
    assert all(quotas.take_request(user) is not None for _ in range(10))
    assert refused(user)


def test_a_log_written_before_members_still_counts(backend, settings):  # noqa: F811
    """A database row of bare timestamps (written by the previous release) keeps counting."""
    if settings.QUOTA_BACKEND != "database":
        pytest.skip("the database backend's row format")
    settings.QUOTA_REQUESTS_PER_MINUTE = 2
    user = make_user()
    slot = quotas.take_request(user)
    QuotaCounter.objects.filter(key=slot.key).update(hits=[time.time() - 1])
    assert slot.give_back() is False
    assert quotas.take_request(user) is not None
    assert refused(user)
