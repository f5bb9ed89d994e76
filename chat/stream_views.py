"""``GET /api/messages/<id>/stream``: a reply as Server-Sent Events.

A client gets the text after the offset it has (``Last-Event-ID``), then the live deltas, each
exactly once, then ``done`` or ``error``. Where the runner is in this process, the deltas come
from its in-memory fan-out; where it is in another process, from the channel layer, with gaps
filled from the text the runner saves (``chat.followers``). The database connection is given
back before streaming.

The response itself (its slot among the user's open streams, its framing, the end of a stream
that fails) is ``chat.sse_response``'s, shared with a post that streams its reply.
"""

from collections.abc import AsyncIterator

from django.conf import settings
from django.views.decorators.http import require_GET

from core import draining
from core.db_thread import db

from . import followers, selectors, streaming
from .api import api_view, authenticated, json_error
from .sse_response import sse_or_refusal
from .state import ReplyState


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
        return sse_or_refusal(
            message_id, generation.user_id, followers.follow_local(generation, offset)
        )
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
        return sse_or_refusal(message_id, user.pk, followers.follow_local(generation, offset))
    if generation is not None:  # runs here, for another user: look it up as theirs (404)
        state = await db(selectors.reply_state, message_id, user_id=user.pk)
    if state is None:
        return json_error(404, "not_found", "No such reply.")
    return sse_or_refusal(message_id, user.pk, _from_state(state, offset))


def _user_and_state(request, message_id: int, read_state: bool):
    user = authenticated(request)
    return user, selectors.reply_state(message_id, user_id=user.pk) if read_state else None


def _invalid_offset():
    return json_error(
        400, "invalid_offset", "Last-Event-ID must be a character offset (an integer >= 0)."
    )


def _from_state(state: ReplyState, offset: int) -> AsyncIterator[bytes]:
    # Not generated here (a local reply of this user was taken above).
    if not state.in_progress:
        return followers.replay(state, offset)
    return followers.follow_elsewhere(state, offset)
