"""The read-only analytics API (v1): tokens made in the admin, 401/403/400 as JSON, the same
documents as the exports (whose numbers test_exports.py checks against the pages)."""

import re
from datetime import UTC, timedelta

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from analytics.apps import DASHBOARD_GROUP
from analytics.models import APIToken
from analytics.tests.test_admin import (  # noqa: F401 (fixtures)
    DASHBOARD,
    REPORT,
    admin_client,
    calls_between,
    people,
    seeded,
    superuser,
)

pytestmark = pytest.mark.django_db

API_DASHBOARD = "/api/analytics/v1/dashboard"
API_REPORT = "/api/analytics/v1/report"
TOKENS = reverse("admin:analytics_apitoken_changelist")
ADD_TOKEN = reverse("admin:analytics_apitoken_add")


@pytest.fixture
def viewer(django_user_model):
    user = django_user_model.objects.create_user("viewer", password="x-pass-123456", is_staff=True)
    user.groups.add(Group.objects.get(name=DASHBOARD_GROUP))
    return user


def expiry_fields(end) -> dict:
    """The admin's date and time inputs of a token's end (UTC, the suite's time zone)."""
    end = end.astimezone(UTC)
    return {"expires_at_0": end.strftime("%Y-%m-%d"), "expires_at_1": end.strftime("%H:%M:%S")}


def create_token(admin_client, user, name="Metabase", days=90) -> str:  # noqa: F811
    """Create a token through the admin's add form; return the key the page shows once."""
    end = timezone.now() + timedelta(days=days)
    response = admin_client.post(ADD_TOKEN, {"user": user.pk, "name": name, **expiry_fields(end)})
    assert response.status_code == 200, response.content.decode()[:2000]
    html = response.content.decode()
    (key,) = re.findall(r'value="(aia_[A-Za-z0-9_-]+)" data-api-key', html)
    return key


def bearer(key: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def test_a_token_made_in_the_admin_reads_the_dashboard(admin_client, client, seeded, viewer):  # noqa: F811
    key = create_token(admin_client, viewer)
    token = APIToken.objects.get()
    # Only a hash is kept; the admin lists the token by its prefix, never the key.
    assert key not in str(APIToken.objects.values().get())
    assert token.prefix == key[:12] and token.user == viewer and token.last_used_at is None
    listing = admin_client.get(TOKENS).content.decode()
    assert token.prefix in listing and key not in listing

    t = seeded["today"]
    params = {"start": (t - timedelta(days=6)).isoformat(), "end": t.isoformat()}
    response = client.get(API_DASHBOARD, params, **bearer(key))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "private, no-store"
    data = response.json()
    assert data["totals"]["calls"] == calls_between(t - timedelta(days=6), t).count()
    # The same document as the page's JSON export of the same range.
    export = admin_client.get(DASHBOARD, {**params, "format": "json"}).json()
    assert data == export
    token.refresh_from_db()
    assert token.last_used_at is not None

    response = client.get(API_REPORT, {"day": seeded["yesterday"].isoformat()}, **bearer(key))
    assert response.status_code == 200
    export = admin_client.get(REPORT, {"format": "json"}).json()  # defaults to yesterday too
    assert response.json() == export
    assert client.get(API_REPORT, **bearer(key)).json() == export


def test_the_staff_session_reads_the_api(admin_client, seeded):  # noqa: F811
    response = admin_client.get(API_DASHBOARD)
    assert response.status_code == 200
    assert response.json()["days_in_range"] == 30


def test_without_credentials_401_json(client):
    for url in (API_DASHBOARD, API_REPORT):
        response = client.get(url)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"
        assert response["WWW-Authenticate"] == 'Bearer realm="analytics"'


@pytest.mark.parametrize(
    "header",
    ["Bearer aia_not-a-real-token", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "Bearer x" * 50],
)
def test_a_bad_token_is_401_json(client, header):
    response = client.get(API_DASHBOARD, HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_a_revoked_token_is_refused(admin_client, client, viewer):  # noqa: F811
    key = create_token(admin_client, viewer)
    keep = create_token(admin_client, viewer, name="another")
    assert client.get(API_DASHBOARD, **bearer(key)).status_code == 200
    token = APIToken.objects.get(name="Metabase")
    response = admin_client.post(
        TOKENS, {"action": "revoke", "_selected_action": [token.pk]}, follow=True
    )
    assert "Revoked 1 token(s)." in response.content.decode()
    assert client.get(API_DASHBOARD, **bearer(key)).status_code == 401
    assert client.get(API_DASHBOARD, **bearer(keep)).status_code == 200
    # A token of a deactivated user stops working too.
    viewer.is_active = False
    viewer.save()
    assert client.get(API_DASHBOARD, **bearer(keep)).status_code == 401


def test_users_without_the_permission_get_403_json(
    admin_client,  # noqa: F811
    client,
    django_user_model,
    people,  # noqa: F811
    viewer,
):
    staff = django_user_model.objects.create_user("staffer", password="x-pass-1234", is_staff=True)
    staff_key = create_token(admin_client, staff)
    viewer_key = create_token(admin_client, viewer)
    client.logout()  # admin_client is the same client
    response = client.get(API_DASHBOARD, **bearer(staff_key))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    # A token made for a viewer stops working when they leave the group.
    assert client.get(API_REPORT, **bearer(viewer_key)).status_code == 200
    viewer.groups.clear()
    assert client.get(API_REPORT, **bearer(viewer_key)).status_code == 403
    client.force_login(people["alice"])  # signed in, not staff
    response = client.get(API_REPORT)
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    ("url", "params", "field", "message"),
    [
        (API_DASHBOARD, {"start": "yesterday"}, "start", "is not a date of the form YYYY-MM-DD"),
        (API_DASHBOARD, {"end": "2999-01-01"}, "end", "is in the future"),
        (API_DASHBOARD, {"start": "2024-03-10", "end": "2024-03-01"}, None, "is after the end"),
        (API_DASHBOARD, {"start": "2023-01-01", "end": "2024-06-01"}, None, "longer than 366"),
        (API_REPORT, {"day": "31-12-2024"}, "day", "is not a date of the form YYYY-MM-DD"),
        (API_REPORT, {"day": "1999-12-31"}, "day", "is before 2000-01-01"),
    ],
)
def test_bad_dates_are_400_json(admin_client, url, params, field, message):  # noqa: F811
    response = admin_client.get(url, params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "bad_date" and message in error["message"]
    assert error.get("field") == field


def test_the_api_is_read_only(admin_client, client, viewer):  # noqa: F811
    key = create_token(admin_client, viewer)
    for method in (client.post, client.put, client.delete):
        response = method(API_DASHBOARD, **bearer(key))
        assert response.status_code == 405
        assert response.json()["error"]["code"] == "method_not_allowed"
        assert response["Allow"] == "GET, HEAD"


def test_only_superusers_see_and_make_tokens(admin_client, client, viewer, people):  # noqa: F811
    create_token(admin_client, viewer)
    # Only staff are offered as the token's user.
    form = admin_client.get(ADD_TOKEN).content.decode()
    assert ">viewer<" in form and ">alice<" not in form
    client.force_login(viewer)  # may read the dashboard and the analytics models, not tokens
    assert client.get(TOKENS).status_code == 403
    assert client.get(ADD_TOKEN).status_code == 403
    assert "apitoken" not in client.get(reverse("admin:index")).content.decode()
