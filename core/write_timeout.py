"""A write timeout for Server-Sent Events under daphne: a reader that stops reading is cut off.

Daphne writes every chunk an application sends into Twisted's buffer at once, without limit and
without telling the application when the client does not read: a reader that stalls (a frozen
tab, a proxy that stopped reading) would keep the whole unsent rest of its reply in the
process's memory for as long as its TCP connection lives. Twisted does tell a *producer*
registered on the request: it pauses the producer once the socket's kernel buffer is full and
Twisted's own holds more than 64 KiB, and resumes it when the client has read. This ASGI
wrapper registers such a producer for every ``text/event-stream`` response and aborts the
connection when it stays paused for ``SSE_WRITE_TIMEOUT_SECONDS``; daphne then tells the
application that the client is gone, which ends the stream as a disconnect does.

It finds the daphne request through the ``send`` callable daphne gives the application (a
``functools.partial`` of ``Server.handle_reply`` bound to the request). Under another server,
or another daphne version, it finds none and does nothing.
"""

import asyncio
import functools
import logging
import socket

from django.conf import settings

from .metrics import SSE_STREAM_ENDS

logger = logging.getLogger(__name__)

# SO_SNDBUF of an event stream's socket (Linux doubles it for its own bookkeeping).
SEND_BUFFER_BYTES = 64 * 1024


def _daphne_request(send):
    """The Twisted request behind daphne's ``send``, or None."""
    if not isinstance(send, functools.partial) or not send.args:
        return None
    request = send.args[0]
    if callable(getattr(request, "registerProducer", None)) and hasattr(request, "transport"):
        return request
    return None


class _StallWatch:
    """A push producer on one response: paused means the client stopped taking its bytes."""

    def __init__(self, request, timeout: float):
        self.request = request
        self.transport = request.transport
        self.timeout = timeout
        self.timer: asyncio.TimerHandle | None = None
        self.registered = False

    def register(self) -> None:
        self.request.registerProducer(self, True)
        self.registered = True
        # The kernel's buffer of the socket would otherwise grow (autotuning) to 4 MiB on
        # Linux and hold a stalled reader's text there, out of sight of the timeout. An event
        # stream needs little: 64 KiB per round trip is far above any reply's rate.
        try:
            handle = self.transport.getHandle()
            handle.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        except Exception:  # not a TCP socket (a test transport, a UNIX socket): leave it
            logger.debug("send buffer of an event stream left as it was", exc_info=True)

    def unregister(self) -> None:
        # Before the response finishes (Twisted logs a producer left registered). The timer
        # stays: the final event may still be unsent, and a stalled reader must not keep it.
        if self.registered:
            self.registered = False
            try:
                self.request.unregisterProducer()
            except Exception:  # the connection is gone, and the request with it
                logger.debug("producer of a closed request", exc_info=True)

    # Twisted's IPushProducer.
    def pauseProducing(self) -> None:
        if self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(self.timeout, self._expire)

    def resumeProducing(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def stopProducing(self) -> None:
        self.resumeProducing()

    def _expire(self) -> None:
        self.timer = None
        transport = self.transport
        # Still full (after the response ended nobody resumes this producer: ask the socket).
        if getattr(transport, "producerPaused", True) and not getattr(
            transport, "disconnected", False
        ):
            logger.warning(
                "closing a stream whose reader has not read for %ss (%s)",
                self.timeout,
                getattr(self.request, "uri", b"").decode(errors="replace"),
            )
            SSE_STREAM_ENDS.labels("stalled_reader").inc()
            transport.abortConnection()

    def cancel(self) -> None:
        self.resumeProducing()


class WriteTimeout:
    """ASGI middleware: apply ``SSE_WRITE_TIMEOUT_SECONDS`` to event-stream responses."""

    def __init__(self, application):
        self.application = application  # named as Django's ASGIStaticFilesHandler names it

    async def __call__(self, scope, receive, send):
        request = _daphne_request(send) if scope["type"] == "http" else None
        if request is None:
            return await self.application(scope, receive, send)
        watch: _StallWatch | None = None

        async def guarded_send(message):
            nonlocal watch
            kind = message["type"]
            if kind == "http.response.start" and _is_event_stream(message):
                watch = _StallWatch(request, settings.SSE_WRITE_TIMEOUT_SECONDS)
                try:
                    watch.register()
                except Exception:  # another producer, a closed request: no timeout then
                    logger.debug("no write timeout for this stream", exc_info=True)
                    watch = None
            elif kind == "http.response.body" and watch and not message.get("more_body"):
                watch.unregister()
            await send(message)

        try:
            return await self.application(scope, receive, guarded_send)
        finally:
            if watch is not None:
                watch.unregister()
                if getattr(watch.transport, "disconnected", False):
                    watch.cancel()


def _is_event_stream(message) -> bool:
    for name, value in message.get("headers", ()):
        if name.lower() == b"content-type":
            return value.lower().startswith(b"text/event-stream")
    return False
