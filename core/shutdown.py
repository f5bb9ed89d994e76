"""What a server process does when it stops: the apps' shutdown hooks, and the drain on a stop
signal under daphne.

An app that has work in flight registers a hook in its ``AppConfig.ready()`` (the chat: let its
replies end, then interrupt and store what is left); ``shut_down`` runs them all. Core calls
them without knowing the apps.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from . import draining

logger = logging.getLogger("core.draining")

ShutdownHook = Callable[..., Awaitable[object]]
_hooks: list[ShutdownHook] = []


def on_shutdown(hook: ShutdownHook) -> None:
    """Register ``hook(*, drain_seconds, grace_seconds)``, awaited when this process stops."""
    if hook not in _hooks:
        _hooks.append(hook)


async def shut_down(*, drain_seconds: float, grace_seconds: float) -> None:
    """Run every registered hook at once (each drains its own work) and wait for them all."""
    await asyncio.gather(
        *(hook(drain_seconds=drain_seconds, grace_seconds=grace_seconds) for hook in _hooks)
    )


def drain_on_stop_signals() -> None:
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
    import signal
    import sys
    import threading

    if "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer
    from twisted.internet import reactor as twisted_reactor

    reactor: Any = twisted_reactor  # the installed reactor (the module's stub is an interface)

    def stop_when_drained() -> None:
        drained = defer.Deferred.fromFuture(
            asyncio.ensure_future(
                shut_down(
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
                shut_down(drain_seconds=0, grace_seconds=settings.CHAT_SHUTDOWN_GRACE_SECONDS)
            )
        )

    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)
