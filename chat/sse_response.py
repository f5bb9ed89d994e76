"""A reply's events as a streaming HTTP response, shared by the stream view (``GET
/api/messages/<id>/stream``) and a post that asks for its reply's stream (``Accept:
text/event-stream``, chat.api).

A stream never stays open without an end: a fault after the response started (Redis, the
database, a bug) ends it with an ``error`` event ``stream_interrupted`` that has no ``id`` (the
client's Last-Event-ID stays the offset of the last delta it got), and the client reconnects.
"""

import logging
from collections.abc import AsyncIterator

from django.conf import settings
from django.http import StreamingHttpResponse

from core.errors import error_json
from core.metrics import SSE_STREAM_ENDS, SSE_STREAMS_OPEN

from .sse import sse_comment, sse_event, sse_retry
from .stream_limits import StreamSlot, take_slot

logger = logging.getLogger(__name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"


class StreamResponse(StreamingHttpResponse):
    """Gives its stream slot back when closed, also if its events never started (a client gone
    before the first write): the server closes every response it was given."""

    slot: StreamSlot | None = None

    def close(self):
        if self.slot is not None:
            self.slot.release()
        super().close()


def too_many_streams():
    SSE_STREAM_ENDS.labels("too_many_streams").inc()
    return error_json(
        429,
        {
            "code": "too_many_streams",
            "message": f"You have {settings.CHAT_MAX_STREAMS_PER_USER} streams open already on "
            "this server. Close one (another tab or window) and try again.",
        },
    )


def sse_response(
    message_id: int,
    events: AsyncIterator[bytes],
    slot: StreamSlot,
    *,
    first: bytes = b"",
) -> StreamResponse:
    """The events of reply ``message_id`` as a response that holds ``slot`` (``take_slot``)
    until it is closed; ``first``: an event sent before them (a post's ``accepted``)."""
    response = StreamResponse(
        framed(events, message_id, slot, first=first),
        content_type=SSE_CONTENT_TYPE,
    )
    response.slot = slot
    for name, value in SSE_HEADERS.items():
        response[name] = value
    return response


def sse_or_refusal(message_id: int, user_id: int, events: AsyncIterator[bytes]):
    """``sse_response`` with a slot of ``user_id``'s, or 429 ``too_many_streams``."""
    slot = take_slot(user_id)
    if slot is None:
        return too_many_streams()
    return sse_response(message_id, events, slot)


def interrupted_event(message_id: int) -> bytes:
    """The last event of a stream that failed after it started. No ``id``: the client keeps the
    offset of the last delta it got and resumes from there when it reconnects."""
    return sse_event(
        "error",
        {
            "message_id": message_id,
            "status": "streaming",
            "code": "stream_interrupted",
            "message": "The connection to the reply was interrupted. Reconnecting…",
            "retryable": True,
        },
    )


async def framed(
    events: AsyncIterator[bytes], message_id: int, slot: StreamSlot, *, first: bytes = b""
) -> AsyncIterator[bytes]:
    SSE_STREAMS_OPEN.inc()
    try:
        # Headers and a first comment go out at once, before the upstream's first token.
        yield sse_retry(2000) + (first or sse_comment("stream open"))
        try:
            async for chunk in events:
                yield chunk
        except Exception:
            # After the headers nothing can become an error response, and with daphne the
            # connection would stay open with no event: end it so that the client reconnects.
            logger.warning(
                "stream of reply %s failed; ending it with stream_interrupted",
                message_id,
                exc_info=True,
            )
            SSE_STREAM_ENDS.labels("stream_interrupted").inc()
            yield interrupted_event(message_id)
    finally:
        slot.release()
        SSE_STREAMS_OPEN.dec()
