"""ASGI entry point: HTTP (including the SSE streams) goes to Django through Channels' router."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiproject.settings")

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402  (needs Django set up first)
from django.conf import settings  # noqa: E402

http_app = django_asgi_app
if settings.SERVE_STATIC:
    # Development and tests only; in production nginx serves /static/ from STATIC_ROOT.
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    http_app = ASGIStaticFilesHandler(django_asgi_app)

application = ProtocolTypeRouter({"http": http_app})


def _stop_generations_before_shutdown() -> None:
    """Under daphne, a stop (SIGTERM, SIGINT) first lets this process's replies end cleanly.

    Daphne stops the Twisted reactor, which runs on asyncio; a "before shutdown" trigger that
    returns a Deferred holds the stop until it fires. Other servers are left alone.
    """
    import asyncio
    import sys

    if "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer, reactor

    from chat import runner

    def before_shutdown():
        grace = settings.CHAT_SHUTDOWN_GRACE_SECONDS
        return defer.Deferred.fromFuture(asyncio.ensure_future(runner.shutdown(grace)))

    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)


_stop_generations_before_shutdown()
