"""Login throttling (django-axes) on the site's login and /admin/login/, over real HTTP.

A daphne process with a 5-minute lock-out serves most tests; the spoofing tests also use the
session's server (no trusted proxy) and the project's nginx.conf in front of daphne.
"""

from datetime import timedelta

import httpx
import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.test import RequestFactory, override_settings

from core.client_ip import client_ip
from devtools.live import CSRF_TOKEN, app_env, run_app_server

from .nginx_process import NGINX, nginx_for

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct-horse-battery"
# No lock ends by itself during a test, however slow the machine; the cool-off test moves the
# failures back in time instead of waiting for it.
LOCKOUT_SECONDS = 300
FAILURE_LIMIT = 3


@pytest.fixture(scope="module")
def throttled_server(django_db_setup, django_db_blocker, simulator, tmp_path_factory):
    """A server with a short lock-out that trusts X-Forwarded-For from 127.0.0.1 (a proxy)."""
    with django_db_blocker.unblock():
        env = app_env(
            simulator,
            LOGIN_FAILURE_LIMIT=str(FAILURE_LIMIT),
            LOGIN_LOCKOUT_SECONDS=str(LOCKOUT_SECONDS),
            TRUSTED_PROXIES="127.0.0.1",
        )
    with run_app_server(env=env, log_dir=tmp_path_factory.mktemp("throttled")) as server:
        yield server


def log_in(base_url: str, username: str, password: str, *, path="/accounts/login/", **headers):
    with httpx.Client(base_url=base_url, cookies={"csrftoken": CSRF_TOKEN}) as client:
        return client.post(
            path,
            data={"username": username, "password": password, "csrfmiddlewaretoken": CSRF_TOKEN},
            headers=headers,
        )


def logged_in(response: httpx.Response) -> bool:
    return response.status_code == 302 and "sessionid" in response.cookies


def fail_many(base_url: str, username: str, times: int = 20, **kwargs) -> list[int]:
    return [
        log_in(base_url, username, "wrong-password", **kwargs).status_code for _ in range(times)
    ]


def test_wrong_passwords_lock_the_login_until_the_cool_off_ends(throttled_server, user):
    base = throttled_server.base_url
    statuses = fail_many(base, "alice", 22)
    # The form answers the first failures; from the limit on, the lock-out page.
    assert statuses[: FAILURE_LIMIT - 1] == [200] * (FAILURE_LIMIT - 1)
    assert set(statuses[FAILURE_LIMIT:]) == {429}
    refused = log_in(base, "alice", PASSWORD)
    assert refused.status_code == 429 and not logged_in(refused)
    assert "Too many failed logins" in refused.text
    assert refused.headers["retry-after"] == str(LOCKOUT_SECONDS)
    assert "text/html" in refused.headers["content-type"]
    as_json = log_in(base, "alice", PASSWORD, Accept="application/json")
    assert as_json.status_code == 429
    assert as_json.json()["error"]["code"] == "login_locked"
    assert as_json.json()["error"]["retry_after"] == LOCKOUT_SECONDS
    # Refused attempts are not recorded: the failures stay at the limit.
    assert AccessAttempt.objects.get().failures_since_start == FAILURE_LIMIT
    # The cool-off runs from the last recorded failure: 30 s before its end the lock holds...
    moved = AccessAttempt.objects.get().attempt_time - timedelta(seconds=LOCKOUT_SECONDS - 30)
    AccessAttempt.objects.update(attempt_time=moved)
    assert log_in(base, "alice", PASSWORD).status_code == 429
    # ... and once it has passed, the right password logs in.
    AccessAttempt.objects.update(attempt_time=moved - timedelta(seconds=31))
    assert logged_in(log_in(base, "alice", PASSWORD))
    # A success resets the count: one more wrong password does not lock again.
    assert log_in(base, "alice", "wrong-password").status_code == 200
    assert logged_in(log_in(base, "alice", PASSWORD))


def test_the_admin_login_is_throttled_too(throttled_server, transactional_db):
    get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    base = throttled_server.base_url
    statuses = fail_many(base, "root", 21, path="/admin/login/")
    assert set(statuses[FAILURE_LIMIT:]) == {429}
    refused = log_in(base, "root", PASSWORD, path="/admin/login/")
    assert refused.status_code == 429 and not logged_in(refused)
    assert "Too many failed logins" in refused.text
    # The count is shared with the site's login: that is locked for this user too.
    assert log_in(base, "root", PASSWORD).status_code == 429


def test_the_lock_is_per_username_and_client_address(throttled_server, user, other_user):
    base = throttled_server.base_url
    # 127.0.0.1 is a trusted proxy here: the address it forwards is the client's.
    fail_many(base, "alice", 20, **{"X-Forwarded-For": "203.0.113.7"})
    assert log_in(base, "alice", PASSWORD, **{"X-Forwarded-For": "203.0.113.7"}).status_code == 429
    # The same user from another address, and another user from the same address, log in.
    assert logged_in(log_in(base, "alice", PASSWORD, **{"X-Forwarded-For": "198.51.100.9"}))
    assert logged_in(log_in(base, "mallory", PASSWORD, **{"X-Forwarded-For": "203.0.113.7"}))
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.7"}


def test_a_forged_forwarded_for_is_ignored_without_a_trusted_proxy(app_server, user):
    """The session's server trusts no proxy: rotating X-Forwarded-For changes nothing."""
    statuses = [
        log_in(
            app_server.base_url, "alice", "wrong", **{"X-Forwarded-For": f"192.0.2.{n}"}
        ).status_code
        for n in range(1, 21)
    ]
    assert 429 in statuses
    forged = log_in(app_server.base_url, "alice", PASSWORD, **{"X-Forwarded-For": "192.0.2.99"})
    assert forged.status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.1"}


@pytest.mark.skipif(NGINX is None, reason="nginx not installed")
def test_behind_nginx_the_client_address_is_nginx_s_peer_not_a_forged_header(
    throttled_server, user, tmp_path
):
    """nginx replaces X-Forwarded-For with the address it saw: a client cannot pick its own."""
    with nginx_for(throttled_server.base_url, tmp_path) as base:
        statuses = [
            log_in(base, "alice", "wrong", **{"X-Forwarded-For": f"192.0.2.{n}"}).status_code
            for n in range(1, 21)
        ]
        assert 429 in statuses
        forged = log_in(base, "alice", PASSWORD, **{"X-Forwarded-For": "192.0.2.99"})
    assert forged.status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.1"}


@pytest.mark.parametrize(
    ("remote", "forwarded", "trusted", "expected"),
    [
        ("203.0.113.5", "1.2.3.4", [], "203.0.113.5"),  # no trusted proxy: the peer
        ("10.0.0.2", "1.2.3.4", ["10.0.0.0/8"], "1.2.3.4"),
        ("10.0.0.2", "6.6.6.6, 1.2.3.4", ["10.0.0.0/8"], "1.2.3.4"),  # left of it: forged
        ("10.0.0.2", "1.2.3.4, 10.0.0.9", ["10.0.0.0/8"], "1.2.3.4"),  # two proxies
        ("10.0.0.2", "", ["10.0.0.0/8"], "10.0.0.2"),
        ("10.0.0.2", "garbage, 1.2.3.4", ["10.0.0.0/8"], "1.2.3.4"),
        ("10.0.0.2", "1.2.3.4, garbage", ["10.0.0.0/8"], "10.0.0.2"),
        ("::ffff:10.0.0.2", "1.2.3.4", ["10.0.0.0/8"], "1.2.3.4"),
        ("2001:db8::1", "1.2.3.4", ["2001:db8::/32"], "1.2.3.4"),
    ],
)
def test_client_ip_believes_forwarded_for_only_from_trusted_proxies(
    remote, forwarded, trusted, expected
):
    import ipaddress

    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    networks = tuple(ipaddress.ip_network(n) for n in trusted)
    with override_settings(TRUSTED_PROXIES=networks):
        assert client_ip(request) == expected
