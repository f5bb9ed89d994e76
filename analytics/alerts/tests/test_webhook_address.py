"""Webhooks reach public addresses only (blind SSRF), checked on save and on every send."""

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.urls import reverse

from analytics.alerts.models import NotificationChannel
from analytics.alerts.notify import AlertMessage, send_to
from analytics.alerts.webhook_address import UnsafeWebhookAddress, check_url
from analytics.tests.factories import make_user

from .test_alerts import Receiver

pytestmark = pytest.mark.django_db

MESSAGE = AlertMessage("[TEST] t", "text", {})


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:8000/hook", "loopback"),
        ("http://localhost/hook", "loopback"),  # a name, resolved
        ("http://169.254.169.254/latest/meta-data/", "link-local"),  # cloud metadata
        ("http://10.1.2.3/hook", "private"),
        ("http://172.17.0.1/hook", "private"),
        ("http://192.168.1.1/hook", "private"),
        ("http://[::1]/hook", "loopback"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://[fd00::1]/hook", "private"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://240.0.0.1/hook", "reserved"),
        ("http://100.64.0.1/hook", "non-public"),  # shared address space (CGNAT)
        ("http://2130706433/hook", "loopback"),  # 127.0.0.1 written as one number
    ],
)
def test_internal_addresses_are_refused(url, kind):
    with pytest.raises(UnsafeWebhookAddress, match=f"is a {kind} address"):
        check_url(url)
    channel = NotificationChannel(name="x", kind="webhook", url=url)
    with pytest.raises(ValidationError) as refused:
        channel.full_clean()
    assert "public addresses" in str(refused.value.message_dict["url"])


@pytest.mark.parametrize(
    "url", ["https://93.184.215.14/hook?token=x", "http://[2606:4700:4700::1111]:8443/x"]
)
def test_public_addresses_are_allowed(url):
    check_url(url)
    NotificationChannel(name="x", kind="webhook", url=url).full_clean()


def test_other_schemes_and_unresolvable_hosts_are_refused():
    for url in ("ftp://93.184.215.14/x", "file:///etc/passwd", "http:///nohost"):
        with pytest.raises(UnsafeWebhookAddress, match="http:// or https://"):
            check_url(url)
    with pytest.raises(UnsafeWebhookAddress, match="cannot be resolved"):
        check_url("http://no-such-host.invalid/hook")


def test_the_setting_allows_private_receivers(settings):
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True
    for url in ("http://127.0.0.1:8000/hook", "http://10.1.2.3/hook", "http://localhost/"):
        check_url(url)


def test_a_channel_saved_unchecked_is_refused_at_send_time(caplog):
    """As after a DNS change (rebinding), or a row written around the form: the send checks
    the addresses it connects to, and the receiver gets nothing."""
    receiver = Receiver()
    try:
        for n, url in enumerate(
            (receiver.url("/hook?token=SECRET"), receiver.url().replace("127.0.0.1", "localhost"))
        ):
            channel = NotificationChannel.objects.create(name=f"hook{n}", kind="webhook", url=url)
            result = send_to(channel, MESSAGE)
            assert result["ok"] is False
            assert "loopback address" in result["error"] and "SECRET" not in result["error"]
    finally:
        receiver.server.shutdown()
    assert receiver.bodies == []
    assert "SECRET" not in caplog.text


SECRET_URL = "https://hooks.slack.com/services/T000/B000/SECRETTOKEN"


def staff_with(client, *codenames):
    user = make_user(is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return user


def test_view_only_staff_never_see_a_webhook_url(client):
    channel = NotificationChannel.objects.create(
        name="slack", kind="webhook", format="slack", url=SECRET_URL
    )
    staff_with(client, "view_notificationchannel")
    change_url = reverse("admin:alerts_notificationchannel_change", args=[channel.pk])
    for url in (change_url, reverse("admin:alerts_notificationchannel_changelist")):
        page = client.get(url)
        assert page.status_code == 200
        assert "SECRETTOKEN" not in page.content.decode(), url
        assert "https://hooks.slack.com/…" in page.content.decode()
    history = client.get(change_url + "history/")
    assert "SECRETTOKEN" not in history.content.decode()
    # And cannot change it either.
    assert (
        client.post(
            change_url, {"name": "x", "kind": "webhook", "url": "https://x.example/"}
        ).status_code
        == 403
    )


def test_staff_who_may_change_a_channel_see_and_edit_its_url(client):
    channel = NotificationChannel.objects.create(
        name="slack", kind="webhook", format="slack", url=SECRET_URL
    )
    staff_with(client, "view_notificationchannel", "change_notificationchannel")
    page = client.get(reverse("admin:alerts_notificationchannel_change", args=[channel.pk]))
    assert SECRET_URL in page.content.decode()


def test_the_admin_refuses_an_internal_webhook_address(client, settings):
    staff_with(client, "add_notificationchannel", "view_notificationchannel")
    form = {"name": "meta", "kind": "webhook", "format": "generic", "enabled": "on"}
    add_url = reverse("admin:alerts_notificationchannel_add")
    refused = client.post(add_url, {**form, "url": "http://169.254.169.254/latest/"})
    assert refused.status_code == 200
    assert "is a link-local address" in refused.content.decode()
    assert not NotificationChannel.objects.filter(name="meta").exists()
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True
    saved = client.post(add_url, {**form, "url": "http://10.0.0.5/hook"})
    assert saved.status_code == 302
    assert NotificationChannel.objects.filter(name="meta").exists()
