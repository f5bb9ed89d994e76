"""The analytics API's tokens over real requests: their end (default, chosen when made, checked,
401 once past), their last use (written at most once a minute) and the per-token rate limit
(429 with Retry-After). On SQLite with the local-memory cache, and on PostgreSQL with Redis when
DATABASE_URL and REDIS_URL are set."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from analytics.api_tokens import RATE_WINDOW_SECONDS, take_api_request
from analytics.models import APIToken
from analytics.tests.test_admin import admin_client, superuser  # noqa: F401 (fixtures)
from analytics.tests.test_api import (
    ADD_TOKEN,
    API_DASHBOARD,
    API_REPORT,
    TOKENS,
    bearer,
    create_token,
    expiry_fields,
    viewer,  # noqa: F401 (fixture)
)

pytestmark = pytest.mark.django_db


def test_a_new_token_ends_after_90_days_by_default(admin_client, viewer):  # noqa: F811
    form = admin_client.get(ADD_TOKEN).content.decode()
    in_90_days = (timezone.now() + timedelta(days=90)).date().isoformat()
    assert f'name="expires_at_0" value="{in_90_days}"' in form
    before = timezone.now()
    create_token(admin_client, viewer)
    token = APIToken.objects.get()
    assert timedelta(days=90) - timedelta(minutes=1) < token.expires_at - before
    assert token.expires_at - before < timedelta(days=90, minutes=1)
    listing = admin_client.get(TOKENS).content.decode()
    assert '<td class="field-state">active</td>' in listing


def test_the_end_is_chosen_when_the_token_is_made(admin_client, viewer):  # noqa: F811
    page = admin_client.post(
        ADD_TOKEN,
        {"user": viewer.pk, "name": "A week", **expiry_fields(timezone.now() + timedelta(days=7))},
    )
    assert "data-expires-at" in page.content.decode()
    token = APIToken.objects.get()
    assert token.expires_at.date() == (timezone.now() + timedelta(days=7)).date()
    for days, message in [
        (-1, "The token&#x27;s end must be in the future."),
        (400, "The token&#x27;s end may be at most 366 days ahead"),
    ]:
        end = timezone.now() + timedelta(days=days)
        response = admin_client.post(
            ADD_TOKEN, {"user": viewer.pk, "name": "x", **expiry_fields(end)}
        )
        assert response.status_code == 200 and message in response.content.decode()
    assert APIToken.objects.count() == 1  # the refused ones were not made


def test_an_expired_token_is_401_with_its_reason(admin_client, client, viewer):  # noqa: F811
    key = create_token(admin_client, viewer, days=1)
    assert client.get(API_DASHBOARD, **bearer(key)).status_code == 200
    ended = timezone.now() - timedelta(seconds=1)
    APIToken.objects.update(expires_at=ended)  # as it will be tomorrow
    for url in (API_DASHBOARD, API_REPORT):
        response = client.get(url, **bearer(key))
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["code"] == "token_expired"
        assert f"The token expired at {ended:%Y-%m-%d %H:%M} UTC" in error["message"]
        assert 'error="invalid_token"' in response["WWW-Authenticate"]
    listing = admin_client.get(TOKENS).content.decode()
    assert '<td class="field-state">expired</td>' in listing


def test_last_use_is_written_at_most_once_a_minute(admin_client, client, viewer):  # noqa: F811
    key = create_token(admin_client, viewer)
    assert client.get(API_REPORT, **bearer(key)).status_code == 200
    first = APIToken.objects.get().last_used_at
    assert first is not None
    # The next request of the same minute writes nothing to the token.
    with CaptureQueriesContext(connection) as queries:
        assert client.get(API_REPORT, **bearer(key)).status_code == 200
    writes = [q["sql"] for q in queries if q["sql"].startswith("UPDATE") and "apitoken" in q["sql"]]
    assert writes == []
    assert APIToken.objects.get().last_used_at == first
    # A use more than a minute after the last one noted is noted.
    APIToken.objects.update(last_used_at=first - timedelta(minutes=2))
    assert client.get(API_REPORT, **bearer(key)).status_code == 200
    assert APIToken.objects.get().last_used_at > first


def test_a_token_over_its_rate_limit_gets_429_with_retry_after(
    admin_client,  # noqa: F811
    client,
    settings,
    viewer,  # noqa: F811
):
    settings.ANALYTICS_API_REQUESTS_PER_MINUTE = 3
    key = create_token(admin_client, viewer)
    other = create_token(admin_client, viewer, name="another")
    # Seven requests: whatever minute boundary falls among them, one minute holds four or more.
    statuses = []
    refused = None
    for _ in range(7):
        response = client.get(API_REPORT, **bearer(key))
        statuses.append(response.status_code)
        if response.status_code == 429:
            refused = response
    assert set(statuses) == {200, 429} and statuses[:3] == [200, 200, 200], statuses
    assert statuses.count(200) <= 6
    assert refused is not None
    error = refused.json()["error"]
    assert error["code"] == "rate_limited"
    assert "More than 3 requests this minute" in error["message"]
    retry_after = int(refused["Retry-After"])
    assert 1 <= retry_after <= RATE_WINDOW_SECONDS and error["retry_after"] == retry_after
    assert refused["Cache-Control"] == "no-store"
    # Another token of the same user has a count of its own.
    assert client.get(API_REPORT, **bearer(other)).status_code == 200


def test_a_staff_session_is_rate_limited_too(admin_client, settings):  # noqa: F811
    settings.ANALYTICS_API_REQUESTS_PER_MINUTE = 2
    statuses = [admin_client.get(API_REPORT).status_code for _ in range(5)]
    assert statuses[:2] == [200, 200] and 429 in statuses, statuses


def test_no_limit_when_the_setting_is_none(admin_client, settings):  # noqa: F811
    settings.ANALYTICS_API_REQUESTS_PER_MINUTE = None
    assert {admin_client.get(API_REPORT).status_code for _ in range(5)} == {200}


def test_the_count_is_per_clock_minute():
    subject = f"test:{uuid.uuid4()}"
    minute = 29_000_000 * RATE_WINDOW_SECONDS  # a minute's start, in epoch seconds
    taken = [take_api_request(subject=subject, limit=3, now=minute + 10 + i) for i in range(5)]
    # Three allowed, then refused until the next minute: 50 s after the first request's 10th.
    assert taken == [None, None, None, 47, 46]
    assert take_api_request(subject=subject, limit=3, now=minute + 59.5) == 1
    assert take_api_request(subject=subject, limit=3, now=minute + 60) is None  # a new minute
    assert take_api_request(subject=f"test:{uuid.uuid4()}", limit=None, now=minute) is None
