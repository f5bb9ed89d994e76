"""ASGI entry point: HTTP (including the SSE streams) goes to Django through Channels' router."""

import os

from core.handlers import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiproject.settings")

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402  (needs Django set up first)
from django.conf import settings  # noqa: E402

http_app = django_asgi_app
if settings.SERVE_STATIC:
    # Development and tests only; in production nginx serves /static/ from STATIC_ROOT.
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    http_app = ASGIStaticFilesHandler(django_asgi_app)

# A reader that stops reading an event stream is cut off (SSE_WRITE_TIMEOUT_SECONDS).
from core.write_timeout import WriteTimeout  # noqa: E402

application = ProtocolTypeRouter({"http": WriteTimeout(http_app)})


def _drain_on_stop_signals() -> None:
    """Under daphne, a stop signal (SIGTERM, SIGINT) drains this process before it stops.

    The first signal starts the drain (core/draining.py): readiness turns 503, new posts
    and streams are refused, and the replies in progress run to their end, for up to
    CHAT_DRAIN_SECONDS, with their streams served as before; then what is left is interrupted
    and stored (CHAT_SHUTDOWN_GRACE_SECONDS), and the reactor stops. A second signal ends the
    drain at once. Other servers are left alone.

    Why the signal handlers and not a Twisted "before shutdown" trigger alone: daphne adds one
    of its own (``Server.kill_all_applications``) that cancels every open request as soon as
    the shutdown begins, the streams of the replies included, so their readers would be cut.
    The drain happens while the reactor still runs normally, listening port included; the
    trigger kept below covers a stop that comes another way (then the replies are interrupted).
    """
    import asyncio
    import logging
    import signal
    import sys
    import threading

    if "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer, reactor

    from chat import runner
    from core import draining

    logger = logging.getLogger("core.draining")

    def stop_when_drained() -> None:
        drained = defer.Deferred.fromFuture(
            asyncio.ensure_future(
                runner.shutdown(
                    drain_seconds=settings.CHAT_DRAIN_SECONDS,
                    grace_seconds=settings.CHAT_SHUTDOWN_GRACE_SECONDS,
                )
            )
        )
        drained.addErrback(lambda failure: logger.error("drain failed: %s", failure.value))
        drained.addBoth(lambda _: reactor.stop() if reactor.running else None)

    def on_stop_signal(number: int) -> None:
        name = signal.Signals(number).name
        if draining.is_draining():
            logger.warning("second %s: interrupting the replies still running", name)
            draining.hurry()
            return
        logger.warning("%s: draining (up to %ss)", name, settings.CHAT_DRAIN_SECONDS)
        draining.begin()
        stop_when_drained()

    def handle(number, frame) -> None:
        # A signal handler runs between two bytecodes of the loop's thread: hand over to the
        # loop, as Twisted's own handlers do.
        reactor.callFromThread(on_stop_signal, number)

    def install() -> None:
        # Runs once the reactor has installed its handlers: replace them where it did (SIGINT
        # stays ignored where the parent made it so, e.g. a background job of a shell script).
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) == reactor.sigTerm:
            signal.signal(signal.SIGTERM, handle)
        if signal.getsignal(signal.SIGINT) == reactor.sigInt:
            signal.signal(signal.SIGINT, handle)

    reactor.callWhenRunning(install)

    def before_shutdown():
        # A stop by other means than a signal, or the end of the drain (nothing left then).
        return defer.Deferred.fromFuture(
            asyncio.ensure_future(
                runner.shutdown(drain_seconds=0, grace_seconds=settings.CHAT_SHUTDOWN_GRACE_SECONDS)
            )
        )

    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)


_drain_on_stop_signals()


def _freeze_startup_objects() -> None:
    """Keep the objects of start-up (Django, the SDK, the views: about 160,000) out of the
    garbage collector's full collections, which otherwise walk them all on the event loop.

    Measured under bench/stream.py (N=1, 50, 50, 200): full collections while serving took
    about 155 ms each without this and about 80 ms with it, every stream stalled meanwhile.
    """
    import gc

    from django.urls import get_resolver

    get_resolver().url_patterns  # import the views now, so they are frozen too  # noqa: B018
    gc.collect()
    gc.freeze()


_freeze_startup_objects()
