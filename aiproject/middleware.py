"""Django's own middleware, with its hooks run on the event loop where they do no I/O.

Under ASGI, Django runs every hook of a ``MiddlewareMixin`` middleware in a worker thread
(``sync_to_async``), because a hook *may* touch the database. For the eight used here that is
up to 15 thread hand-offs per request, and under load each one waits for the busy event loop
twice: most of the time a stream's ``GET`` took to its first byte (docs/performance.md).

These subclasses run a hook inline, on the loop, when for this request it does no I/O, and in
a thread as before otherwise. The hooks are Django's own, unchanged; only where they run
differs. A hook that touched the database inline would fail loudly (Django raises
``SynchronousOnlyOperation``), never silently. What can do I/O, and so still runs in a thread:

- ``SessionMiddleware.process_response`` when it saves: the session was modified, or
  ``SESSION_SAVE_EVERY_REQUEST`` is on (the session is loaded lazily, by the view, never here);
- ``MessageMiddleware.process_response`` when messages were read or added (storing them can
  load the session);
- every ``CsrfViewMiddleware`` hook when ``CSRF_USE_SESSIONS`` is on (the secret is then in
  the session). Its failure view (``chat.views.csrf_failure``) renders without a request
  context, so a rejection does no I/O either.

The rest (security headers, host and slash checks, the CSRF cookie and token checks, the lazy
``request.user``, X-Frame-Options, the CSP header) only read the request and write headers.
Under WSGI and the sync test client they behave exactly like Django's classes.
"""

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.contrib.messages import middleware as messages_middleware
from django.contrib.sessions import middleware as sessions_middleware
from django.core import checks
from django.middleware import clickjacking, common, csp, csrf, security
from django.utils.module_loading import import_string


class InlineHooks:
    """Mix in before a ``MiddlewareMixin`` class; override ``*_needs_thread`` where I/O can
    happen."""

    def __init__(self, get_response):
        super().__init__(get_response)
        if self.async_mode and hasattr(self, "process_view"):
            # Django adapts a sync process_view to a thread at load; an async one it awaits.
            run_in_thread = sync_to_async(self.process_view, thread_sensitive=True)
            run_inline = self.process_view

            async def process_view(request, *args):
                if self.view_needs_thread(request):
                    return await run_in_thread(request, *args)
                return run_inline(request, *args)

            self.process_view = process_view

    async def __acall__(self, request):
        response = None
        if hasattr(self, "process_request"):
            if self.request_needs_thread(request):
                response = await sync_to_async(self.process_request, thread_sensitive=True)(request)
            else:
                response = self.process_request(request)
        response = response or await self.get_response(request)
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


class CsrfViewMiddleware(InlineHooks, csrf.CsrfViewMiddleware):
    def request_needs_thread(self, request) -> bool:
        return settings.CSRF_USE_SESSIONS

    def view_needs_thread(self, request) -> bool:
        return settings.CSRF_USE_SESSIONS

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


# Django's deploy checks security.W001-W003 look for the stock classes' dotted paths in
# MIDDLEWARE, and so warn about these subclasses. Settings silence those three, and this check,
# registered by the chat app, asks the same of MIDDLEWARE with subclasses accepted.
_DEPLOY_REQUIREMENTS = (
    (
        security.SecurityMiddleware,
        "aiproject.W001",
        "No SecurityMiddleware in MIDDLEWARE: the SECURE_* settings (HSTS, SSL redirect, "
        "nosniff, referrer and opener policies) have no effect.",
    ),
    (
        clickjacking.XFrameOptionsMiddleware,
        "aiproject.W002",
        "No XFrameOptionsMiddleware in MIDDLEWARE: pages are served without X-Frame-Options.",
    ),
    (
        csrf.CsrfViewMiddleware,
        "aiproject.W003",
        "No CsrfViewMiddleware in MIDDLEWARE: forms and the API are not protected from CSRF.",
    ),
)


def check_deploy_middleware(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    loaded = []
    for path in settings.MIDDLEWARE:
        try:
            loaded.append(import_string(path))
        except ImportError:
            continue  # Django reports that itself when it loads the middleware
    return [
        checks.Warning(message, id=check_id)
        for required, check_id, message in _DEPLOY_REQUIREMENTS
        if not any(isinstance(cls, type) and issubclass(cls, required) for cls in loaded)
    ]
