"""``GET /api/messages/<id>/stream``: a reply as Server-Sent Events.

A client gets the text after the offset it has (``Last-Event-ID``), then the live deltas, each
exactly once, then ``done`` or ``error``. Where the runner is in this process, the deltas come
from its in-memory fan-out; where it is in another process, from the channel layer, with gaps
filled from the text the runner saves. The database connection is given back before streaming.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from channels.layers import get_channel_layer
from django.conf import settings
from django.http import StreamingHttpResponse
from django.views.decorators.http import require_GET

from aiproject import draining
from analytics.metrics import SSE_STREAMS_OPEN

from . import services, streaming
from .api import api_view, json_error
from .sse import sse_comment, sse_event, sse_retry
from .state import ReplyState, db, final_event

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
    if generation is not None and generation.posted_with(
        request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    ):
        # The session that posted the message, on the process that generates the reply: no
        # database at all (under load the session lookup queued behind the replies' writes and
        # held up the first token; docs/performance.md).
        offset = _parse_offset(request)
        if offset is None:
            return _invalid_offset()
        return _sse(_follow_local(generation, offset))
    return await _checked_stream(request, message_id)


@api_view("GET")
async def _checked_stream(request, user, message_id: int):
    offset = _parse_offset(request)
    if offset is None:
        return _invalid_offset()
    # The session lookup ran in db() (see api_view), which gave its connection back: an open
    # stream holds no connection of the pool.
    generation = streaming.local_generation(message_id)
    if generation is not None and generation.user_id == user.pk:
        # The reply runs in this process: its fan-out has everything.
        return _sse(_follow_local(generation, offset))
    state = await db(services.reply_state, message_id, user_id=user.pk)
    if state is None:
        return json_error(404, "not_found", "No such reply.")
    return _sse(_from_state(state, offset))


def _invalid_offset():
    return json_error(
        400, "invalid_offset", "Last-Event-ID must be a character offset (an integer >= 0)."
    )


def _sse(events: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        _events(events), content_type="text/event-stream; charset=utf-8"
    )
    for name, value in SSE_HEADERS.items():
        response[name] = value
    return response


def _from_state(state: ReplyState, offset: int) -> AsyncIterator[bytes]:
    # Not generated here (a local reply of this user was taken above).
    if not state.in_progress:
        return _replay(state, offset)
    return _follow_elsewhere(state, offset)


async def _events(events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    SSE_STREAMS_OPEN.inc()
    try:
        # Headers and a first comment go out at once, before the upstream's first token.
        yield sse_retry(2000) + sse_comment("stream open")
        async for chunk in events:
            yield chunk
    finally:
        SSE_STREAMS_OPEN.dec()


def _delta(text: str, end: int) -> bytes:
    return sse_event("delta", {"text": text}, event_id=end)


def _final(event: str, data: dict, length: int) -> bytes:
    return sse_event(event, data, event_id=length)


async def _replay(state: ReplyState, offset: int) -> AsyncIterator[bytes]:
    rest = state.content[offset:]
    if rest:
        yield _delta(rest, len(state.content))
    event, data = final_event(state)
    yield _final(event, data, len(state.content))


async def _follow_local(generation: streaming.Generation, offset: int) -> AsyncIterator[bytes]:
    backlog, queue = generation.subscribe(offset)
    # A client never gets text again that it says it has (even an offset beyond the text so far).
    position = offset + len(backlog)
    try:
        if backlog:
            yield _delta(backlog, position)
        while True:
            if queue.empty():
                try:
                    # A cancelled Queue.get leaves its item in the queue: nothing is lost.
                    async with asyncio.timeout(settings.SSE_PING_SECONDS):
                        item = await queue.get()
                except TimeoutError:
                    yield sse_comment("ping")
                    continue
            else:
                item = queue.get_nowait()
            # What queued up meanwhile goes out as one event: a subscriber that fell behind (a
            # busy process) catches up in one write instead of one per token. The runner's
            # deltas are contiguous, so their concatenation is the text from ``position`` on.
            parts, end = [], position
            while isinstance(item, streaming.Delta):
                if item.end > end:
                    parts.append(item.text[end - item.start :])
                    end = item.end
                item = queue.get_nowait() if not queue.empty() else None
            if parts:
                yield _delta("".join(parts), end)
                position = end
            if isinstance(item, streaming.End):
                if item.length > position:  # only when this subscriber came in after the end
                    yield _delta(generation.text[position:], item.length)
                yield _final(item.event, item.data, item.length)
                return
    finally:
        generation.unsubscribe(queue)


async def _follow_elsewhere(state: ReplyState, offset: int) -> AsyncIterator[bytes]:
    """Follow a reply generated by another process (or by none: then it is swept as stale)."""
    message_id = state.id
    group = streaming.group_name(message_id)
    layer = get_channel_layer() if streaming.cross_process() else None
    channel = ""
    receiver = None
    if layer is not None:
        channel = await streaming.new_channel(layer)
        await layer.group_add(group, channel)
    try:
        # Read the saved text only after subscribing, so nothing falls between the two.
        state = await db(services.reply_state, message_id)
        position = offset
        pending: dict[int, streaming.Delta] = {}
        live_since_watch = False
        last_progress = last_output = time.monotonic()
        check_every = max(settings.CHAT_PERSIST_INTERVAL_SECONDS * 2, 0.5)
        gap_check_every = settings.CHAT_PERSIST_INTERVAL_SECONDS
        last_check = time.monotonic()
        while True:
            if state is None:
                yield _final(
                    "error",
                    {
                        "message_id": message_id,
                        "status": "deleted",
                        "code": "not_found",
                        "message": "The conversation was deleted.",
                        "retryable": False,
                    },
                    position,
                )
                return
            # What the database has beyond our position (saved text, or the final reply).
            if len(state.content) > position:
                yield _delta(state.content[position:], len(state.content))
                position = len(state.content)
                last_progress = last_output = time.monotonic()
            if not state.in_progress:
                event, data = final_event(state)
                yield _final(event, data, len(state.content))
                return
            if layer is not None and not live_since_watch:
                # Ask the runner for the deltas after what we have (it publishes only to replies
                # watched elsewhere); again after each check that saw nothing live, in case the
                # request was lost or the runner had not started yet.
                with contextlib.suppress(Exception):
                    await streaming.send_watch(state.runner_channel, message_id, position)
            live_since_watch = False
            # Live deltas, until a gap or silence sends us back to the database.
            need_check = False
            while not need_check:
                for start in sorted(pending):
                    delta = pending[start]
                    if delta.start > position:
                        break
                    del pending[start]
                    if delta.end > position:
                        yield _delta(delta.text[position - delta.start :], delta.end)
                        position = delta.end
                        last_progress = last_output = time.monotonic()
                if pending and time.monotonic() - last_check >= gap_check_every:
                    # A gap (deltas sent before we subscribed, or dropped by the layer): fill it
                    # from the saved text, at most once per save interval.
                    need_check = True
                    break
                if layer is None:
                    await asyncio.sleep(check_every)
                    message = None
                else:
                    if receiver is None:
                        receiver = asyncio.ensure_future(layer.receive(channel))
                    done, _ = await asyncio.wait({receiver}, timeout=check_every)
                    message = receiver.result() if done else None
                    if done:
                        receiver = None
                if message is not None and message.get("type") == "chat.delta":
                    delta = streaming.Delta(message["start"], message["text"])
                    live_since_watch = True
                    if delta.end > position:
                        pending[delta.start] = delta
                    continue
                if message is not None and message.get("type") == "chat.end":
                    if message["length"] <= position:
                        yield _final(message["event"], message["data"], message["length"])
                        return
                    need_check = True  # the end is saved before it is published
                    break
                now = time.monotonic()
                if now - last_output >= settings.SSE_PING_SECONDS:
                    yield sse_comment("ping")
                    last_output = now
                if now - last_progress >= check_every:
                    need_check = True
            await asyncio.sleep(0)
            last_check = time.monotonic()
            state = await db(_fresh_state, message_id)
            if state is not None and state.in_progress and len(state.content) <= position:
                last_progress = time.monotonic()
    finally:
        if layer is not None:
            # Leave the group before giving up the channel, then drop what channels_redis
            # buffered for it: the process's other receivers share its Redis list and would
            # keep a buffer for a channel nobody reads. A message already in flight may still
            # land there; it is dropped too, a few seconds later.
            with contextlib.suppress(Exception):
                await asyncio.shield(layer.group_discard(group, channel))
            buffers = getattr(layer, "receive_buffer", None)
            if buffers is not None:
                asyncio.get_running_loop().call_later(5, buffers.pop, channel, None)
        if receiver is not None and not receiver.done():
            receiver.cancel()


def _fresh_state(message_id: int) -> ReplyState | None:
    """Return the saved state, first marking the reply interrupted if its runner went silent."""
    services.sweep_stale_replies(message_id=message_id)
    return services.reply_state(message_id)
