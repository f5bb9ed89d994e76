"""The debug page and error reports hide credentials inside URLs, not only in secret names."""

import sys

from django.test import RequestFactory, override_settings
from django.views.debug import technical_500_response

from core.error_reports import SecretScrubbingFilter, scrub_url_credentials

# As a WSGI server puts the environment in request.META (the page lists it).
META = {"DATABASE_URL": "postgres://app:dbpass@db:5432/app", "HTTP_X_NOTE": "redis://:hunter2@r"}
SECRETS = ("hunter2", "s3cr3t-pw", "sk-in-query", "mailpass", "dbpass")
SETTINGS = {
    "REDIS_URL": "redis://:hunter2@redis:6379/0",
    "AI_BASE_URL": "https://proxyuser:s3cr3t-pw@llm-proxy.example/v1?api-key=sk-in-query&x=1",
    "CACHES": {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "redis://:hunter2@redis:6379/0",
        }
    },
    "CHANNEL_LAYERS": {
        "default": {"CONFIG": {"hosts": [{"address": "redis://:hunter2@redis:6379/0"}]}}
    },
    "SOME_NOTE": "see smtp://mailer:mailpass@smtp.example:587",
}


def test_urls_lose_their_userinfo_and_secret_query_values():
    assert scrub_url_credentials("redis://:pw@h:6379/0") == "redis://********@h:6379/0"
    assert (
        scrub_url_credentials("https://u:p@x.example/v1?api-key=abc&model=m&token=t#f")
        == "https://********@x.example/v1?api-key=********&model=m&token=********#f"
    )
    assert scrub_url_credentials("https://api.openai.com/v1") == "https://api.openai.com/v1"
    assert scrub_url_credentials("user@example.com") == "user@example.com"


def test_safe_settings_hide_credentials_inside_values():
    with override_settings(**SETTINGS):
        shown = repr(SecretScrubbingFilter().get_safe_settings())
    for secret in SECRETS[:4]:
        assert secret not in shown, secret
    assert "llm-proxy.example/v1" in shown  # the rest stays useful for debugging


def test_the_debug_page_shows_no_credential_from_settings_or_the_environment():
    # (The page quotes this test's source around the raise: no secret literal near it.)
    request = RequestFactory().get("/boom", **META)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        with override_settings(DEBUG=True, **SETTINGS):
            page = technical_500_response(request, *sys.exc_info()).content.decode()
    assert "boom" in page and "REDIS_URL" in page and "AI_BASE_URL" in page
    for secret in SECRETS:
        assert secret not in page, secret
