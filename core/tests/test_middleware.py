"""Django's middleware with its hooks on the event loop (core.middleware).

Where a hook runs is checked directly; that sessions, CSRF and messages still work is checked
through a real daphne process, where the async path is the one that serves.
"""

import asyncio
import re
import threading
from datetime import date
from decimal import Decimal

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.http import HttpResponse
from django.test import RequestFactory
from django.utils.deprecation import MiddlewareMixin

from core.middleware import InlineHooks


class Recorder(MiddlewareMixin):
    def process_request(self, request):
        request.threads = {"request": threading.get_ident()}

    def process_view(self, request, view, args, kwargs):
        request.threads["view"] = threading.get_ident()

    def process_response(self, request, response):
        request.threads["response"] = threading.get_ident()
        return response


class InlineRecorder(InlineHooks, Recorder):
    pass


class ResponseInThread(InlineRecorder):
    def response_needs_thread(self, request, response) -> bool:
        return True


@pytest.mark.parametrize(
    ("middleware", "inline"),
    [
        (Recorder, {"request": False, "view": False, "response": False}),
        (InlineRecorder, {"request": True, "view": True, "response": True}),
        (ResponseInThread, {"request": True, "view": True, "response": False}),
    ],
)
def test_hooks_run_on_the_loop_unless_they_need_a_thread(middleware, inline):
    async def serve():
        async def handler(request):
            # As Django's handler does: process_view after the chain's process_request, awaited
            # when it is a coroutine function, in a thread otherwise.
            hook = instance.process_view
            if asyncio.iscoroutinefunction(hook):
                await hook(request, handler, (), {})
            else:
                await sync_to_async(hook, thread_sensitive=True)(request, handler, (), {})
            return HttpResponse("ok")

        instance = middleware(handler)
        request = RequestFactory().get("/")
        await instance(request)
        return request.threads, threading.get_ident()

    threads, loop_thread = asyncio.run(serve())
    assert {hook: ident == loop_thread for hook, ident in threads.items()} == inline


def _csrf_from(page: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


@pytest.mark.django_db(transaction=True)
def test_login_admin_messages_and_logout_work_on_the_async_path(app_server, django_user_model):
    from analytics.models import ModelPrice

    django_user_model.objects.create_superuser("root", password="correct-horse-battery")
    price = ModelPrice.objects.create(
        model="test-model",
        input_per_million=Decimal("1"),
        cached_input_per_million=Decimal("0.5"),
        output_per_million=Decimal("2"),
        effective_from=date(2026, 1, 1),
        source="test",
    )
    with httpx.Client(base_url=app_server.base_url, timeout=30) as client:
        # A form without its token is refused (the CSRF check, run on the loop).
        refused = client.post("/accounts/login/", data={"username": "root", "password": "x"})
        assert refused.status_code == 403 and "CSRF" in refused.text

        # Logging in saves the session (in a thread).
        page = client.get("/accounts/login/")
        assert page.status_code == 200 and "csrftoken" in client.cookies
        logged_in = client.post(
            "/accounts/login/",
            data={
                "username": "root",
                "password": "correct-horse-battery",
                "csrfmiddlewaretoken": _csrf_from(page.text),
            },
        )
        assert logged_in.status_code == 302 and "sessionid" in client.cookies
        assert client.get("/admin/").status_code == 200

        # An admin deletion adds a message; the next page shows it once.
        url = f"/admin/analytics/modelprice/{price.pk}/delete/"
        confirm = client.get(url)
        deleted = client.post(
            url, data={"post": "yes", "csrfmiddlewaretoken": _csrf_from(confirm.text)}
        )
        assert deleted.status_code == 302
        listing = client.get(deleted.headers["location"])
        assert "was deleted successfully" in listing.text
        assert "was deleted successfully" not in client.get(deleted.headers["location"]).text
        assert not ModelPrice.objects.filter(pk=price.pk).exists()

        # Logging out flushes the session.
        out = client.post(
            "/accounts/logout/", data={"csrfmiddlewaretoken": _csrf_from(listing.text)}
        )
        assert out.status_code in (200, 302)
        assert client.get("/admin/").status_code == 302


def _security_warnings() -> set[str]:
    from django.core import checks

    return {
        m.id for m in checks.run_checks(include_deployment_checks=True, tags=[checks.Tags.security])
    }


def test_django_security_checks_see_the_subclasses(settings):
    """Django's checks find these classes installed, so the checks that apply only to installed
    middleware still run (a bad production environment still warns)."""
    assert not {"security.W001", "security.W002", "security.W003"} & _security_warnings()

    settings.SECURE_HSTS_SECONDS = 0
    settings.SECURE_SSL_REDIRECT = False
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.X_FRAME_OPTIONS = "SAMEORIGIN"
    bad = _security_warnings()
    # HSTS, SSL redirect, session cookie, CSRF cookie, X-Frame-Options.
    assert {
        "security.W004",
        "security.W008",
        "security.W012",
        "security.W016",
        "security.W019",
    } <= bad

    settings.MIDDLEWARE = [
        path
        for path in settings.MIDDLEWARE
        if not path.endswith(
            ("SecurityMiddleware", "CsrfViewMiddleware", "XFrameOptionsMiddleware")
        )
    ]
    assert {"security.W001", "security.W002", "security.W003"} <= _security_warnings()
