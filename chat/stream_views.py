"""``GET /api/messages/<id>/stream``: a reply as Server-Sent Events.

A client gets the text after the offset it has (``Last-Event-ID``), then the live deltas, each
exactly once, then ``done`` or ``error``. Where the runner is in this process, the deltas come
from its in-memory fan-out; where it is in another process, from the channel layer, with gaps
filled from the text the runner saves (``chat.followers``). The database connection is given
back before streaming.

A stream never stays open without an end: a fault after the response started (Redis, the
database, a bug) ends it with an ``error`` event ``stream_interrupted`` that has no ``id`` (the
client's Last-Event-ID stays the offset of the last delta it got), and the client reconnects.
"""

import logging
from collections.abc import AsyncIterator

from django.conf import settings
from django.http import StreamingHttpResponse
from django.views.decorators.http import require_GET

from core import draining
from core.db_thread import db
from core.metrics import SSE_STREAM_ENDS, SSE_STREAMS_OPEN

from . import followers, selectors, streaming
from .api import api_view, authenticated, json_error
from .sse import sse_comment, sse_event, sse_retry
from .state import ReplyState
from .stream_limits import StreamSlot, take_slot

logger = logging.getLogger(__name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _parse_offset(request) -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.GET.get("offset") or "0"
    try:
        offset = int(raw)
    except ValueError:
        return None
    return offset if offset >= 0 else None


@require_GET
async def stream_message(request, message_id: int):
    generation = streaming.local_generation(message_id)
    if generation is None and draining.is_draining():
        # Stopping: only the replies this process still generates are served from here.
        return draining.refusal()
    if (
        generation is not None
        and generation.user_id is not None
        and generation.posted_with(request.COOKIES.get(settings.SESSION_COOKIE_NAME))
    ):
        # The session that posted the message, on the process that generates the reply: no
        # database at all (under load the session lookup queued behind the replies' writes and
        # held up the first token; docs/performance.md).
        offset = _parse_offset(request)
        if offset is None:
            return _invalid_offset()
        return _sse(message_id, generation.user_id, followers.follow_local(generation, offset))
    return await _checked_stream(request, message_id)


@api_view("GET", authenticates=True)
async def _checked_stream(request, _, message_id: int):
    offset = _parse_offset(request)
    if offset is None:
        return _invalid_offset()
    # One call to the database thread (which gives its connection back: an open stream holds
    # no connection of the pool) for the session's user and, unless the reply runs here, its
    # saved state: under a burst each call waits behind the queued posts.
    generation = streaming.local_generation(message_id)
    user, state = await db(_user_and_state, request, message_id, generation is None)
    if generation is not None and generation.user_id == user.pk:
        # The reply runs in this process: its fan-out has everything.
        return _sse(message_id, user.pk, followers.follow_local(generation, offset))
    if generation is not None:  # runs here, for another user: look it up as theirs (404)
        state = await db(selectors.reply_state, message_id, user_id=user.pk)
    if state is None:
        return json_error(404, "not_found", "No such reply.")
    return _sse(message_id, user.pk, _from_state(state, offset))


def _user_and_state(request, message_id: int, read_state: bool):
    user = authenticated(request)
    return user, selectors.reply_state(message_id, user_id=user.pk) if read_state else None


def _invalid_offset():
    return json_error(
        400, "invalid_offset", "Last-Event-ID must be a character offset (an integer >= 0)."
    )


class _StreamResponse(StreamingHttpResponse):
    """Gives its stream slot back when closed, also if its events never started (a client gone
    before the first write): the server closes every response it was given."""

    slot: StreamSlot | None = None

    def close(self):
        if self.slot is not None:
            self.slot.release()
        super().close()


def _sse(message_id: int, user_id: int, events: AsyncIterator[bytes]):
    slot = take_slot(user_id)
    if slot is None:
        SSE_STREAM_ENDS.labels("too_many_streams").inc()
        return json_error(
            429,
            "too_many_streams",
            f"You have {settings.CHAT_MAX_STREAMS_PER_USER} streams open already on this "
            "server. Close one (another tab or window) and try again.",
        )
    response = _StreamResponse(
        _events(events, message_id, slot), content_type="text/event-stream; charset=utf-8"
    )
    response.slot = slot
    for name, value in SSE_HEADERS.items():
        response[name] = value
    return response


def _from_state(state: ReplyState, offset: int) -> AsyncIterator[bytes]:
    # Not generated here (a local reply of this user was taken above).
    if not state.in_progress:
        return followers.replay(state, offset)
    return followers.follow_elsewhere(state, offset)


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


async def _events(
    events: AsyncIterator[bytes], message_id: int, slot: StreamSlot
) -> AsyncIterator[bytes]:
    SSE_STREAMS_OPEN.inc()
    try:
        # Headers and a first comment go out at once, before the upstream's first token.
        yield sse_retry(2000) + sse_comment("stream open")
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
