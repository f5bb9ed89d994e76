"""The drain of a server process that was asked to stop (SIGTERM, SIGINT).

A draining process keeps serving what it has begun (the replies it generates and their streams)
and refuses new work before doing any of it: ``/readyz`` answers 503 ``draining`` so that load
balancers and deploy scripts stop sending it traffic, and new posts and new streams get 503
``draining`` with ``Retry-After``, which nginx retries on another replica (nginx/nginx.conf,
``proxy_next_upstream ... http_503``). ``core.shutdown`` (installed by ``aiproject.asgi``)
starts the drain on the first signal and ends it early on a second one; the shutdown hooks the
apps register (the chat's: ``chat.runner.shutdown``) do the waiting.

State of this process only: every server process drains on its own signal.
"""

import asyncio
import functools
import logging

from asgiref.sync import iscoroutinefunction
from django.http import JsonResponse

from .errors import error_json

logger = logging.getLogger(__name__)

# A refused client should come back soon: nginx already retried it on another replica, and a
# lone process is being replaced.
RETRY_AFTER_SECONDS = 2

_draining = False
_hurry: asyncio.Event | None = None
# Requests that passed the check and may still start work (a reply): the drain waits for them.
_starting = 0


def is_draining() -> bool:
    return _draining


def work_starting() -> bool:
    """True while a request admitted before the drain began may still start a reply."""
    return _starting > 0


def begin() -> None:
    """Refuse new work from now on (idempotent)."""
    global _draining
    if not _draining:
        _draining = True
        logger.warning("draining: refusing new posts and streams, finishing the replies running")


def hurry() -> None:
    """End the drain at once (a second signal): what still runs is interrupted and stored."""
    begin()
    _hurry_event().set()


def hurried() -> bool:
    return _hurry is not None and _hurry.is_set()


async def wait_hurried() -> None:
    await _hurry_event().wait()


def _hurry_event() -> asyncio.Event:
    global _hurry
    if _hurry is None:
        _hurry = asyncio.Event()
    return _hurry


def reset() -> None:
    """Forget the drain (tests run many servers' worth of views in one process)."""
    global _draining, _hurry
    _draining, _hurry = False, None


def refusal() -> JsonResponse:
    """503 ``draining``: nothing was done, the same request may be sent again (elsewhere)."""
    body = {
        "code": "draining",
        "message": "This server is restarting. Please try again.",
        "retry_after": RETRY_AFTER_SECONDS,
    }
    return expected(error_json(503, body, retry_after=RETRY_AFTER_SECONDS))


def expected(response):
    """Mark a 503 of the drain as expected: Django's request log would record each one as an
    error (`Service Unavailable: ...`) during every deploy, and the request counts as a 5xx
    (analytics' error-rate alert). The request log line stays."""
    response._has_been_logged = True  # what django.utils.log.log_response checks
    response.refused_before_work = True  # analytics.middleware counts it where it is served
    return response


def refuse_while_draining(view):
    """Answer 503 ``draining`` instead of running ``view`` (an async view that starts work)
    once this process drains, before any other check: it costs no database call."""
    if not iscoroutinefunction(view):
        raise TypeError("refuse_while_draining wraps async views only")

    @functools.wraps(view)
    async def wrapper(request, *args, **kwargs):
        global _starting
        if _draining:
            return refusal()
        _starting += 1
        try:
            return await view(request, *args, **kwargs)
        finally:
            _starting -= 1

    return wrapper
