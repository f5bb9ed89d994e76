"""The quota engine on both backends: the database (PostgreSQL or SQLite) and a real Redis."""

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.utils import timezone

from analytics import quotas
from analytics.quotas.models import QuotaCounter, QuotaEvent, UsageQuota
from analytics.services import CallRecord, record_call
from analytics.tests.factories import make_call, make_price, make_user
from analytics.timezones import day_bounds

BACKENDS = [
    "database",
    pytest.param(
        "redis",
        marks=pytest.mark.skipif(
            not django_settings.REDIS_URL, reason="the Redis backend needs REDIS_URL (a real Redis)"
        ),
    ),
]
UNPRICED = "unpriced-model"
PRICED = "quota-test-model"  # $1 per million input tokens, $2 per million output tokens


@pytest.fixture(params=BACKENDS)
def backend(request, settings, transactional_db):
    settings.QUOTA_BACKEND = request.param
    for name in ("REQUESTS_PER_MINUTE", "TOKENS_PER_DAY", "COST_PER_DAY_USD", "COST_PER_MONTH_USD"):
        setattr(settings, f"QUOTA_{name}", None)
    settings.AI_DAILY_COST_CAP_USD = None
    quotas.backend.cache_clear()
    chosen = quotas.backend()
    chosen.clear()
    make_price(model=PRICED, inp="1.00", cached=None, out="2.00")
    yield chosen
    chosen.clear()
    quotas.backend.cache_clear()


def reserve(user, input_tokens, max_tokens, model=UNPRICED):
    return quotas.reserve(user, model=model, input_tokens=input_tokens, max_tokens=max_tokens)


def fits(user, input_tokens, max_tokens, model=UNPRICED) -> bool:
    try:
        quotas.check_only(user, model=model, input_tokens=input_tokens, max_tokens=max_tokens)
    except quotas.QuotaExceeded:
        return False
    return True


def test_tokens_per_day_below_at_and_above_the_edge(backend, settings):
    settings.QUOTA_TOKENS_PER_DAY = 1000
    user = make_user()
    assert fits(user, 400, 599)  # below
    assert fits(user, 400, 600)  # at: the whole quota fits
    assert not fits(user, 400, 601)  # above
    first = reserve(user, 300, 600)  # 900 held
    assert first.tokens == 900
    with pytest.raises(quotas.QuotaExceeded) as refused:
        reserve(user, 1, 100)
    assert refused.value.code == "quota_exceeded"
    assert refused.value.limit == "tokens_per_day"
    assert refused.value.used == 900
    assert refused.value.allowed == 1000
    assert refused.value.resets_at == day_bounds(timezone.localdate())[1]
    assert reserve(user, 0, 100) is not None  # exactly to the edge
    first.release()
    assert fits(user, 400, 500)


def test_cost_per_day_counts_the_priced_worst_case(backend, settings):
    settings.QUOTA_COST_PER_DAY_USD = Decimal("0.30")
    user = make_user()
    # 100k input ($0.10) + 100k output ($0.20) = $0.30: exactly the budget.
    held = reserve(user, 100_000, 100_000, model=PRICED)
    assert held.micro_usd == 300_000
    with pytest.raises(quotas.QuotaExceeded) as refused:
        reserve(user, 1, 0, model=PRICED)
    assert refused.value.limit == "cost_per_day"
    assert refused.value.used == Decimal("0.300000")
    assert "daily AI budget of $0.30" in refused.value.message
    held.release()
    assert fits(user, 100_000, 100_000, model=PRICED)
    assert not fits(user, 100_001, 100_000, model=PRICED)


def test_cost_per_month_includes_recorded_calls_of_the_month(backend, settings):
    settings.QUOTA_COST_PER_MONTH_USD = Decimal("0.50")
    user = make_user()
    month_start = timezone.localtime().replace(day=1, hour=0, minute=0, second=1)
    make_call(
        created_at=month_start, model=PRICED, user=user, input_tokens=50_000, output_tokens=100_000
    )  # $0.25 spent earlier this month
    make_call(  # last month: not counted
        created_at=month_start - timedelta(days=2), model=PRICED, user=user, input_tokens=10**6
    )
    assert fits(user, 50_000, 100_000, model=PRICED)  # $0.25 more: exactly $0.50
    with pytest.raises(quotas.QuotaExceeded) as refused:
        reserve(user, 50_001, 100_000, model=PRICED)
    assert refused.value.limit == "cost_per_month"
    assert refused.value.used == Decimal("0.250000")


def test_recorded_usage_seeds_a_missing_counter_and_demo_history_does_not(backend, settings):
    settings.QUOTA_TOKENS_PER_DAY = 1000
    user = make_user()
    now = timezone.now()
    make_call(created_at=now, user=user, model=UNPRICED, input_tokens=600, output_tokens=300)
    make_call(created_at=now, user=user, model=UNPRICED, input_tokens=10**6, is_demo=True)
    assert fits(user, 50, 50)
    assert not fits(user, 50, 51)
    # The counters are lost (a flushed Redis, a restart): they come back from the calls.
    backend.clear()
    assert not fits(user, 50, 51)


def test_a_recorded_call_is_charged_and_the_reservation_released(backend, settings):
    settings.QUOTA_TOKENS_PER_DAY = 1000
    user = make_user()
    held = reserve(user, 100, 800)
    for estimated in (False, True):  # estimated usage counts like reported usage
        record_call(
            CallRecord(
                task_type="chat",
                model=UNPRICED,
                base_url="http://127.0.0.1:1/v1",
                status="ok",
                input_tokens=100,
                output_tokens=50,
                latency_ms=10,
                tokens_estimated=estimated,
                user_id=user.pk,
            )
        )
    held.release()
    held.release()  # twice is harmless
    meter = quotas.user_meters(user.pk, quotas.limits_for(user))[0]
    assert quotas.meter_state(meter).used == 300
    assert backend.open_reservations() == 0
    assert fits(user, 300, 400)
    assert not fits(user, 300, 401)


def test_a_reservation_that_is_not_renewed_expires(backend, settings):
    settings.QUOTA_TOKENS_PER_DAY = 1000
    settings.QUOTA_RESERVATION_TTL_SECONDS = 1.5
    user = make_user()
    kept = reserve(user, 0, 500)
    reserve(user, 0, 500)  # its process "dies": never released, never renewed
    assert not fits(user, 0, 1)
    for _ in range(4):
        time.sleep(0.5)
        assert kept.renew()
    # The dead one expired and gave its 500 back; the renewed one still holds its 500.
    assert fits(user, 0, 500)
    assert not fits(user, 0, 501)
    kept.release()
    assert fits(user, 0, 1000)


def test_reading_a_meter_gives_expired_reservations_back_first(backend, settings):
    settings.QUOTA_TOKENS_PER_DAY = 1000
    settings.QUOTA_RESERVATION_TTL_SECONDS = 2
    user = make_user()
    reserve(user, 100, 500)
    meter = quotas.user_meters(user.pk, quotas.limits_for(user))[0]
    assert quotas.meter_state(meter).used == 600
    time.sleep(2.5)
    assert quotas.meter_state(meter).used == 0
    assert quotas.user_status(user)["meters"][0].remaining == 1000


def test_the_global_cap_stops_everyone_including_exempt_staff(backend, settings):
    settings.AI_DAILY_COST_CAP_USD = Decimal("0.30")
    user = make_user()
    boss = make_user(is_superuser=True, is_staff=True)
    reserve(user, 100_000, 50_000, model=PRICED)  # $0.20
    with pytest.raises(quotas.QuotaExceeded) as refused:
        reserve(boss, 100_000, 50_000, model=PRICED)
    assert refused.value.limit == "global_daily_cost"
    assert refused.value.code == "quota_exceeded"
    assert "daily AI spending cap" in refused.value.message
    assert "$" not in refused.value.message  # users are not told the company's budget
    assert fits(boss, 50_000, 25_000, model=PRICED)  # $0.10: exactly the cap


def test_unset_cap_and_no_limits_reserve_nothing(backend):
    user = make_user()
    assert reserve(user, 10**6, 10**6) is None
    quotas.take_request(user)


def test_requests_per_minute_is_a_sliding_window(backend, settings):
    settings.QUOTA_REQUESTS_PER_MINUTE = 3
    user, other = make_user(), make_user()
    for _ in range(3):
        quotas.take_request(user)
    with pytest.raises(quotas.QuotaExceeded) as refused:
        quotas.take_request(user)
    assert refused.value.code == "rate_limited"
    assert refused.value.limit == "requests_per_minute"
    assert 55 <= refused.value.retry_after <= 60
    assert "limit of 3 requests per minute" in refused.value.message
    quotas.take_request(other)  # per user


def test_exemption_by_permission_skips_per_user_limits(backend, settings):
    settings.QUOTA_TOKENS_PER_DAY = 10
    settings.QUOTA_REQUESTS_PER_MINUTE = 1
    staff = make_user(is_staff=True)
    group = Group.objects.create(name="Quota-exempt staff")
    group.permissions.add(Permission.objects.get(codename="exempt_from_quotas"))
    staff.groups.add(group)
    plain = make_user()
    assert reserve(staff, 1000, 1000) is None
    for _ in range(3):
        quotas.take_request(staff)
    assert not fits(plain, 1000, 1000)


def test_a_users_row_beats_the_most_generous_group_which_beats_the_settings(backend, settings):
    settings.QUOTA_TOKENS_PER_DAY = 1000
    settings.QUOTA_REQUESTS_PER_MINUTE = 5
    user = make_user()
    assert quotas.limits_for(user).tokens_per_day == 1000
    small, big = Group.objects.create(name="small"), Group.objects.create(name="big")
    UsageQuota.objects.create(group=small, tokens_per_day=3000)
    UsageQuota.objects.create(group=big, tokens_per_day=5000, requests_per_minute=60)
    user.groups.add(small, big)
    limits = quotas.limits_for(user)
    assert (limits.tokens_per_day, limits.requests_per_minute) == (5000, 60)
    UsageQuota.objects.create(user=user, tokens_per_day=200)  # rpm blank: inherited
    limits = quotas.limits_for(user)
    assert (limits.tokens_per_day, limits.requests_per_minute) == (200, 60)
    assert not fits(user, 100, 101)


def test_a_quota_row_names_a_user_or_a_group_not_both(transactional_db):
    from django.db import IntegrityError

    with pytest.raises(IntegrityError):
        UsageQuota.objects.create(tokens_per_day=5)


def test_fifty_concurrent_reservations_against_a_quota_that_admits_ten(backend, settings):
    settings.QUOTA_TOKENS_PER_DAY = 10 * 1000 + 999
    user = make_user()
    barrier = threading.Barrier(50)
    admitted, refused, errors = [], [], []

    def attempt():
        try:
            barrier.wait()
            admitted.append(reserve(user, 200, 800))
        except quotas.QuotaExceeded:
            refused.append(1)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert (len(admitted), len(refused)) == (10, 40)
    meter = quotas.user_meters(user.pk, quotas.limits_for(user))[0]
    assert quotas.meter_state(meter).used == 10_000
    assert backend.open_reservations() == 10


def test_a_refusal_is_stored_and_counted(backend, settings):
    settings.QUOTA_TOKENS_PER_DAY = 10
    user = make_user()
    with pytest.raises(quotas.QuotaExceeded) as refused:
        reserve(user, 5, 6)
    quotas.record_refusal(refused.value, user_id=user.pk, stage="generation")
    event = QuotaEvent.objects.get()
    assert (event.user_id, event.limit, event.stage) == (user.pk, "tokens_per_day", "generation")
    assert (event.used, event.requested, event.allowed) == (0, 11, 10)


def test_the_admin_overview_shows_usage_against_quota_and_the_cap(backend, settings, admin_client):
    settings.QUOTA_TOKENS_PER_DAY = 1000
    settings.AI_DAILY_COST_CAP_USD = Decimal("1.00")
    now = timezone.now()
    heavy, light, gone = make_user("heavy"), make_user("light"), make_user("gone")
    UsageQuota.objects.create(user=light, tokens_per_day=10_000)
    make_call(created_at=now, user=heavy, model=PRICED, input_tokens=700, output_tokens=300)
    make_call(created_at=now, user=light, model=PRICED, input_tokens=50, output_tokens=50)
    with pytest.raises(quotas.QuotaExceeded) as refused:
        reserve(heavy, 1, 0)
    quotas.record_refusal(refused.value, user_id=heavy.pk, stage="request")
    gone.delete()
    url = "/admin/quotas/usagequota/overview/"
    page = admin_client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-user="heavy" data-state="over"' in html
    assert "1,000 / 1,000 (100%)" in html
    assert 'data-user="light" data-state="ok"' in html
    assert "100 / 10,000 (1%)" in html
    assert 'data-cap="open"' in html and "$0.001450 of $1.00" in html
    assert 'data-limit="tokens_per_day">tokens_per_day: 1' in html
    near = admin_client.get(url + "?show=near").content.decode()
    assert 'data-user="heavy"' in near and 'data-user="light"' not in near
    settings.AI_DAILY_COST_CAP_USD = Decimal("0.001")
    assert 'data-cap="reached"' in admin_client.get(url).content.decode()


def test_the_overview_needs_the_dashboard_permission(transactional_db, client):
    staff = make_user(is_staff=True)
    client.force_login(staff)
    assert client.get("/admin/quotas/usagequota/overview/").status_code == 403


def test_the_admin_edits_quota_rows_and_lists_events(transactional_db, admin_client):
    user = make_user("capped")
    page = admin_client.get("/admin/quotas/usagequota/add/")
    assert page.status_code == 200
    saved = admin_client.post(
        "/admin/quotas/usagequota/add/",
        {"user": user.pk, "tokens_per_day": "5000", "cost_per_day_usd": "0.50", "note": "trial"},
    )
    assert saved.status_code == 302, saved.content.decode()[:2000]
    row = UsageQuota.objects.get(user=user)
    assert (row.tokens_per_day, row.cost_per_day_usd, row.requests_per_minute) == (
        5000,
        Decimal("0.50"),
        None,
    )
    assert "user capped" in admin_client.get("/admin/quotas/usagequota/").content.decode()
    both = admin_client.post(
        "/admin/quotas/usagequota/add/",
        {"user": make_user().pk, "group": Group.objects.create(name="g").pk},
    )
    assert both.status_code == 200 and "errornote" in both.content.decode()
    assert admin_client.get("/admin/quotas/quotaevent/").status_code == 200


def test_the_monitor_purges_expired_database_counters(transactional_db, settings):
    from analytics.quotas.jobs import QuotaJobs
    from analytics.quotas.models import QuotaCounter

    settings.QUOTA_BACKEND = "database"
    past, future = timezone.now() - timedelta(seconds=1), timezone.now() + timedelta(days=1)
    QuotaCounter.objects.create(key="x:old", value=5, expires_at=past)
    QuotaCounter.objects.create(key="x:current", value=5, expires_at=future)
    done = QuotaJobs().run_due()
    assert "purged 1 expired quota counters" in done
    assert list(QuotaCounter.objects.values_list("key", flat=True)) == ["x:current"]


def _raw_counter(backend, key: str) -> int | None:
    if isinstance(backend, quotas.RedisBackend):
        raw = backend.client.get(key)
        return None if raw is None else int(raw)
    row = QuotaCounter.objects.filter(key=key).first()
    return None if row is None else row.value


def _call(user, tokens: int, **extra) -> CallRecord:
    return CallRecord(
        task_type="chat",
        model=UNPRICED,
        base_url="http://127.0.0.1:1/v1",
        status="ok",
        input_tokens=tokens,
        output_tokens=0,
        latency_ms=10,
        user_id=user.pk,
        **extra,
    )


def test_a_charge_seeds_a_missing_counter_and_adds_to_an_existing_one(backend, settings):
    user = make_user()
    key = quotas.user_meters(user.pk, None)[0].key
    record_call(_call(user, 30))
    assert _raw_counter(backend, key) is None  # no limit reads it: no counter kept
    settings.QUOTA_TOKENS_PER_DAY = 1000
    record_call(_call(user, 200))  # no counter yet: seeded from the calls, both included
    assert _raw_counter(backend, key) == 230
    record_call(_call(user, 50))
    assert _raw_counter(backend, key) == 280


def test_a_call_counts_against_the_day_it_started(backend, settings):
    """A reply admitted before midnight and recorded after it charges the day that admitted it."""
    settings.QUOTA_TOKENS_PER_DAY = 1000
    user = make_user()
    now = timezone.now()
    yesterday = now - timedelta(days=1)
    today_meter = quotas.user_meters(user.pk, quotas.limits_for(user), now)[0]
    yesterday_meter = quotas.user_meters(user.pk, quotas.limits_for(user), yesterday)[0]
    held = reserve(user, 0, 100)  # today's counter exists
    record_call(_call(user, 300, started_at=yesterday))
    held.release()
    assert _raw_counter(backend, today_meter.key) == 0
    assert _raw_counter(backend, yesterday_meter.key) == 300
    assert fits(user, 0, 1000)


def test_concurrent_sweeps_of_many_expired_reservations(backend, settings):
    settings.QUOTA_TOKENS_PER_DAY = 10_000
    settings.QUOTA_RESERVATION_TTL_SECONDS = 0.5
    users = [make_user() for _ in range(12)]
    for user in users:  # reservations over many users' counters, in no particular order
        reserve(user, 0, 100)
        reserve(users[0], 0, 100)
    time.sleep(0.8)
    errors = []

    def sweep(user):
        try:
            meter = quotas.user_meters(user.pk, None)[0]
            quotas.meter_state(meter)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep, args=(u,)) for u in users * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for user in users:
        assert _raw_counter(backend, quotas.user_meters(user.pk, None)[0].key) == 0
    assert backend.open_reservations() == 0


def test_a_forced_reservation_counts_but_is_never_refused(backend, settings):
    """An expired reservation of a reply still streaming is taken again, limits ignored."""
    settings.QUOTA_TOKENS_PER_DAY = 100
    user = make_user()
    forced = quotas.reserve_anyway(user, model=UNPRICED, input_tokens=0, max_tokens=500)
    assert forced.tokens == 500
    assert not fits(user, 0, 1)  # it counts
    forced.release()
    assert fits(user, 0, 100)


def test_limits_for_many_agrees_with_limits_for(transactional_db, settings):
    settings.QUOTA_TOKENS_PER_DAY = 1000
    plain, own, grouped, boss = make_user(), make_user(), make_user(), make_user(is_superuser=True)
    exempt_by_group, inactive_exempt = make_user(), make_user(is_superuser=True, is_active=False)
    exempt = Group.objects.create(name="exempt")
    exempt.permissions.add(Permission.objects.get(codename="exempt_from_quotas"))
    exempt_by_group.groups.add(exempt)
    team = Group.objects.create(name="team")
    UsageQuota.objects.create(group=team, tokens_per_day=4000, requests_per_minute=9)
    grouped.groups.add(team)
    own.groups.add(team)
    UsageQuota.objects.create(user=own, tokens_per_day=50)
    direct, inactive_direct = make_user(), make_user(is_active=False)
    for holder in (direct, inactive_direct):
        holder.user_permissions.add(Permission.objects.get(codename="exempt_from_quotas"))
    users = [plain, own, grouped, boss, exempt_by_group, inactive_exempt, direct, inactive_direct]
    many = quotas.limits_for_many(users)
    for user in users:
        assert many[user.pk] == quotas.limits_for(user), user
        fresh = type(user).objects.get(pk=user.pk)  # has_perm caches on the instance
        assert many[user.pk].exempt == fresh.has_perm("quotas.exempt_from_quotas"), user
    assert many[direct.pk].exempt and not many[inactive_direct.pk].exempt
    assert many[own.pk].tokens_per_day == 50 and many[own.pk].requests_per_minute == 9
    assert many[boss.pk].exempt and many[exempt_by_group.pk].exempt
    assert not many[inactive_exempt.pk].exempt
