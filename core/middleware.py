"""Django's own middleware, with its hooks run on the event loop where they do no I/O.

Under ASGI, Django runs every hook of a ``MiddlewareMixin`` middleware in a worker thread
(``sync_to_async``), because a hook *may* touch the database. For the eight used here that is
up to 15 thread hand-offs per request, and under load each one waits for the busy event loop
twice: most of the time a stream's ``GET`` took to its first byte (docs/performance.md).

These subclasses run a hook inline, on the loop, when for this request it does no I/O, and in
a thread as before otherwise. The hooks are Django's own, unchanged; only where they run
differs. A hook that touched the database inline would fail loudly (Django raises
``SynchronousOnlyOperation``); other blocking I/O would not, which is why every case below
that can do any goes to a thread:

- ``SessionMiddleware.process_response`` when it saves: the session was modified, or
  ``SESSION_SAVE_EVERY_REQUEST`` is on (the session is loaded lazily, by the view, never here);
- ``MessageMiddleware.process_response`` when messages were read or added (storing them can
  load the session);
- ``CsrfViewMiddleware.process_view`` for a form or multipart POST (its token is read from the
  parsed body, which may be spooled to a file), and every CSRF hook when ``CSRF_USE_SESSIONS``
  is on (the secret is then in the session).

The rest (security headers, host and slash checks, the CSRF cookie and the header token, the
lazy ``request.user``, X-Frame-Options, the CSP header) only read the request and write headers.
A CSRF rejection of a JSON or safe request renders ``chat.views.csrf_failure`` inline: JSON for
the API; for pages, Django's small 403 template, read from its package. Under WSGI and the sync
test client these classes behave exactly like Django's.
"""

from functools import partial
from importlib import import_module

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.contrib.messages import middleware as messages_middleware
from django.contrib.sessions import middleware as sessions_middleware
from django.core.exceptions import ImproperlyConfigured
from django.middleware import clickjacking, common, csp, csrf, security
from django.utils.deprecation import MiddlewareMixin
from django.utils.module_loading import import_string


class InlineHooks(MiddlewareMixin):
    """Mix in before a ``MiddlewareMixin`` class; override ``*_needs_thread`` where I/O can
    happen."""

    def __init__(self, get_response):
        super().__init__(get_response)
        if self.async_mode and hasattr(self, "process_view"):
            # Django adapts a sync process_view to a thread at load; an async one it awaits.
            run_inline = getattr(self, "process_view")  # noqa: B009 (set by the subclass)
            run_in_thread = sync_to_async(run_inline, thread_sensitive=True)

            async def process_view(request, *args):
                if self.view_needs_thread(request):
                    return await run_in_thread(request, *args)
                return run_inline(request, *args)

            setattr(self, "process_view", process_view)  # noqa: B010

    async def __acall__(self, request):
        response = None
        if hasattr(self, "process_request"):
            if self.request_needs_thread(request):
                response = await sync_to_async(self.process_request, thread_sensitive=True)(request)
            else:
                response = self.process_request(request)
        response = response or await self.get_response(request)  # type: ignore[misc]  # async mode
        if hasattr(self, "process_response"):
            if self.response_needs_thread(request, response):
                response = await sync_to_async(self.process_response, thread_sensitive=True)(
                    request, response
                )
            else:
                response = self.process_response(request, response)
        return response

    def request_needs_thread(self, request) -> bool:
        return False

    def view_needs_thread(self, request) -> bool:
        return False

    def response_needs_thread(self, request, response) -> bool:
        return False


class SecurityMiddleware(InlineHooks, security.SecurityMiddleware):
    pass


class SessionMiddleware(InlineHooks, sessions_middleware.SessionMiddleware):
    def response_needs_thread(self, request, response) -> bool:
        session = getattr(request, "session", None)
        return session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


class CommonMiddleware(InlineHooks, common.CommonMiddleware):
    pass


_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class CsrfViewMiddleware(InlineHooks, csrf.CsrfViewMiddleware):
    def request_needs_thread(self, request) -> bool:
        return settings.CSRF_USE_SESSIONS

    def view_needs_thread(self, request) -> bool:
        # The token of a form is read from request.POST: parsing a form body (a large one is
        # spooled to a temporary file, an upload written to one) is I/O. The JSON API sends the
        # token in a header, and safe methods are not checked.
        return settings.CSRF_USE_SESSIONS or (
            request.method not in ("GET", "HEAD", "OPTIONS", "TRACE")
            and request.content_type in _FORM_TYPES
        )

    def response_needs_thread(self, request, response) -> bool:
        return settings.CSRF_USE_SESSIONS


class AuthenticationMiddleware(InlineHooks, auth_middleware.AuthenticationMiddleware):
    pass


class MessageMiddleware(InlineHooks, messages_middleware.MessageMiddleware):
    def response_needs_thread(self, request, response) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is not None and (storage.used or storage.added_new)


class XFrameOptionsMiddleware(InlineHooks, clickjacking.XFrameOptionsMiddleware):
    pass


class ContentSecurityPolicyMiddleware(InlineHooks, csp.ContentSecurityPolicyMiddleware):
    pass


# Django's security checks decide whether the security, CSRF, X-Frame-Options, CSP and session
# middleware are installed by looking for the stock classes' dotted paths in MIDDLEWARE. With
# these subclasses they would conclude "not installed": W001-W003 would warn, and worse, the
# checks that only apply when the middleware is installed (HSTS W004, SSL redirect W008, the
# secure cookies W012/W016, X-Frame-Options W019, CSP, ...) would pass silently. The chat app
# replaces those five predicates with ones that accept subclasses (``use_subclass_aware_checks``),
# so every check runs as it would with the stock classes.
_CHECKED_MIDDLEWARE = {
    ("django.core.checks.security.base", "_security_middleware"): security.SecurityMiddleware,
    ("django.core.checks.security.base", "_xframe_middleware"): (
        clickjacking.XFrameOptionsMiddleware
    ),
    ("django.core.checks.security.base", "_csp_middleware"): csp.ContentSecurityPolicyMiddleware,
    ("django.core.checks.security.csrf", "_csrf_middleware"): csrf.CsrfViewMiddleware,
    ("django.core.checks.security.sessions", "_session_middleware"): (
        sessions_middleware.SessionMiddleware
    ),
}


def middleware_installed(required: type) -> bool:
    """True when MIDDLEWARE lists ``required`` or a subclass of it."""
    for path in settings.MIDDLEWARE:
        try:
            cls = import_string(path)
        except ImportError:
            continue  # Django reports that itself when it loads the middleware
        if isinstance(cls, type) and issubclass(cls, required):
            return True
    return False


def use_subclass_aware_checks() -> None:
    """Point Django's security checks at ``middleware_installed`` (called by the chat app)."""
    for (module_name, predicate), required in _CHECKED_MIDDLEWARE.items():
        module = import_module(module_name)
        if not callable(getattr(module, predicate, None)):
            raise ImproperlyConfigured(
                f"{module_name}.{predicate} is gone: core.middleware needs updating for "
                "this Django version (its security checks would not see the middleware)."
            )
        setattr(module, predicate, partial(middleware_installed, required))
