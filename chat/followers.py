"""The event sources of a reply's stream: a finished reply, one generated in this process, and
one generated in another process (``chat.stream_views`` frames and guards them).

Every event's ``id`` is a character offset, and a final event's ``id`` is never below the last
delta ``id`` sent on that connection: a reader that saw more text than was stored (the runner's
process was killed between two saves) keeps its offset, and is never sent text it has again.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from channels.layers import get_channel_layer
from django.conf import settings

from analytics.metrics import STREAM_STATE_READS
from core.db_thread import db

from . import services, streaming
from .sse import sse_comment, sse_event
from .state import ReplyState, final_event

logger = logging.getLogger(__name__)

# While Redis is away, a follower reads the saved text this often (shared per reply, below).
POLL_SECONDS = 1.0
# A state read started this recently is shared by the process's followers of the same reply.
SHARE_SECONDS = 1.0
# How long joining the group or asking for a watch may take before Redis counts as away (a hung
# Redis would otherwise hold them for the socket timeout), and how often to try joining again.
# A state read that takes longer than STATE_READ_TIMEOUT (a lock, a database that stopped
# answering without closing its connections) ends the stream with stream_interrupted; pings go
# on while it waits.
REDIS_CALL_TIMEOUT = 2.0
REJOIN_SECONDS = 2.0
STATE_READ_TIMEOUT = 10.0
# Followers' own Redis calls (join, watch request, leave) in flight at once in this process (a
# call that waits for its turn longer than REDIS_CALL_TIMEOUT counts as Redis being away). Each
# call in flight takes a connection of the layer's pool, and the pool keeps what it opened: 200
# followers opening at once held 200 connections (about 50 KiB of the process's memory each)
# for as long as the process lived. Receives are not counted: channels_redis makes one at a time.
REDIS_CALLS_AT_ONCE = 8

_redis_calls: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None


def _redis_slot() -> asyncio.Semaphore:
    global _redis_calls
    loop = asyncio.get_running_loop()
    if _redis_calls is None or _redis_calls[0] is not loop:
        _redis_calls = (loop, asyncio.Semaphore(REDIS_CALLS_AT_ONCE))
    return _redis_calls[1]


def delta(text: str, end: int) -> bytes:
    return sse_event("delta", {"text": text}, event_id=end)


def final(event: str, data: dict, length: int, position: int) -> bytes:
    """The closing event; its id is the larger of the text's length and what this reader has."""
    return sse_event(event, data, event_id=max(length, position))


async def replay(state: ReplyState, offset: int) -> AsyncIterator[bytes]:
    rest = state.content[offset:]
    if rest:
        yield delta(rest, len(state.content))
    event, data = final_event(state)
    yield final(event, data, len(state.content), offset)


async def follow_local(generation: streaming.Generation, offset: int) -> AsyncIterator[bytes]:
    backlog, queue = generation.subscribe(offset)
    # A client never gets text again that it says it has (even an offset beyond the text so far).
    position = offset + len(backlog)
    try:
        if backlog:
            yield delta(backlog, position)
        while True:
            if queue.empty():
                try:
                    # A cancelled Queue.get leaves its item in the queue: nothing is lost.
                    async with asyncio.timeout(settings.SSE_PING_SECONDS):
                        item = await queue.get()
                except TimeoutError:
                    if generation.ended_without_end():
                        # Its runner died without an end (a bug): the stored reply tells how
                        # it ended; a reconnect reads it (or finds it swept).
                        streaming.unregister(generation)
                        gone = f"the runner of reply {generation.message_id} ended without an end"
                        raise RuntimeError(gone) from None
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
                yield delta("".join(parts), end)
                position = end
            if isinstance(item, streaming.End):
                if item.length > position:  # only when this subscriber came in after the end
                    yield delta(generation.text[position:], item.length)
                    position = item.length
                yield final(item.event, item.data, item.length, position)
                return
    finally:
        generation.unsubscribe(queue)


# message id -> (monotonic start, the read): one database read serves every follower of a reply
# in this process that asks within SHARE_SECONDS of its start.
_reads: dict[int, tuple[float, asyncio.Future]] = {}


def shared_state(message_id: int, *, not_before: float) -> asyncio.Future:
    """The reply's saved state, from a read started at ``not_before`` or later (a future).

    Followers of one reply in one process share their reads: 200 of them cost one read per
    ``SHARE_SECONDS`` at most, not 200. A failed read fails every follower that waited for it.
    """
    entry = _reads.get(message_id)
    if entry is None or entry[0] < not_before:
        started = time.monotonic()
        future = asyncio.ensure_future(db(_fresh_state, message_id))
        entry = (started, future)
        _reads[message_id] = entry
        STREAM_STATE_READS.inc()

        def forget() -> None:
            if _reads.get(message_id) is entry:
                del _reads[message_id]

        def done(read: asyncio.Future) -> None:
            failed = read.cancelled() or read.exception() is not None  # (retrieves it)
            # A failed read is not shared; a good one is kept until nobody may reuse it.
            asyncio.get_running_loop().call_later(0 if failed else SHARE_SECONDS, forget)

        future.add_done_callback(done)
    return entry[1]


def _fresh_state(message_id: int) -> ReplyState | None:
    """Return the saved state, first marking the reply interrupted if its runner went silent."""
    services.sweep_stale_replies(message_id=message_id)
    return services.reply_state(message_id)


_last_away_warning = float("-inf")


class _Feed:
    """A follower's membership of the reply's channel group, kept across Redis outages.

    While Redis is away (a join, receive or send failed), ``next`` returns nothing and the
    follower reads the saved text instead; the feed tries to join again every
    ``REJOIN_SECONDS`` and says so with ``rejoined``, so that the follower reads the database
    once more (what was said while away is lost) and asks the runner for the deltas again.
    """

    def __init__(self, message_id: int):
        self.message_id = message_id
        self.layer = get_channel_layer() if streaming.cross_process() else None
        self.group = streaming.group_name(message_id)
        self.channel = ""
        self.joined = False
        self.rejoined = False
        self._receiver: asyncio.Future | None = None
        self._joining: asyncio.Future | None = None
        self._next_join = 0.0
        self._warned = False

    async def start(self) -> None:
        if self.layer is None:
            return
        try:
            self.channel = await streaming.new_channel(self.layer)
        except Exception:
            self._away("could not name a channel")
            return
        await self._join()

    async def _join(self) -> None:
        try:
            async with asyncio.timeout(REDIS_CALL_TIMEOUT), _redis_slot():
                await self.layer.group_add(self.group, self.channel)
        except Exception:
            self._away("could not join the group")
            return
        if self._warned:
            logger.info("stream of reply %s: Redis is back, following live", self.message_id)
            self._warned = False
        self.joined = self.rejoined = True

    def _away(self, what: str) -> None:
        global _last_away_warning
        if not self._warned:
            # One warning per process every 10 s: 200 followers losing Redis at once are one
            # event, not 200 (each still logs at INFO).
            now = time.monotonic()
            loud = now - _last_away_warning >= 10
            if loud:
                _last_away_warning = now
            logger.log(
                logging.WARNING if loud else logging.INFO,
                "stream of reply %s: %s; reading the saved text until Redis is back",
                self.message_id,
                what,
                exc_info=loud,
            )
            self._warned = True
        self.joined = False
        self._next_join = time.monotonic() + REJOIN_SECONDS
        if self._receiver is not None:
            self._receiver.cancel()
            self._receiver = None

    async def next(self, wait: float) -> dict | None:
        """The next channel message, or None after ``wait`` seconds (or sooner if Redis is away)."""
        if self.layer is None or not self.channel:
            await asyncio.sleep(wait)
            return None
        if not self.joined:
            if self._joining is None and time.monotonic() >= self._next_join:
                self._joining = asyncio.ensure_future(self._join())
            if self._joining is None:
                await asyncio.sleep(max(0.0, min(wait, self._next_join - time.monotonic())))
                return None
            done, _ = await asyncio.wait({self._joining}, timeout=wait)
            if done:
                self._joining = None
            return None
        if self._receiver is None:
            self._receiver = asyncio.ensure_future(self.layer.receive(self.channel))
        done, _ = await asyncio.wait({self._receiver}, timeout=wait)
        if not done:
            return None
        receiver, self._receiver = self._receiver, None
        try:
            return receiver.result()
        except Exception:
            self._away("the channel receive failed")
            return None

    async def ask_watch(self, runner_channel: str, position: int) -> None:
        """Ask the runner for its deltas after ``position`` (again after each silent check, in
        case the request was lost or the runner had not started yet)."""
        try:
            async with asyncio.timeout(REDIS_CALL_TIMEOUT), _redis_slot():
                await streaming.send_watch(runner_channel, self.message_id, position)
        except Exception:
            self._away("could not ask the runner for its deltas")

    async def close(self) -> None:
        for task in (self._receiver, self._joining):
            if task is not None and not task.done():
                task.cancel()
        if self.layer is None or not self.channel:
            return
        # Leave the group before giving up the channel, then drop what channels_redis buffered
        # for it: the process's other receivers share its Redis list and would keep a buffer
        # for a channel nobody reads. A message already in flight may still land there; it is
        # dropped too, a few seconds later.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(REDIS_CALL_TIMEOUT), _redis_slot():
                await asyncio.shield(self.layer.group_discard(self.group, self.channel))
        buffers = getattr(self.layer, "receive_buffer", None)
        if buffers is not None:
            asyncio.get_running_loop().call_later(5, buffers.pop, self.channel, None)


async def _wait_for_read(read: asyncio.Future) -> AsyncIterator[bytes]:
    """Wait for a state read, yielding a ping every ``SSE_PING_SECONDS`` meanwhile; raise
    TimeoutError after ``STATE_READ_TIMEOUT``. The read itself is never cancelled (others may
    share it; ``asyncio.wait`` leaves it running)."""
    deadline = time.monotonic() + STATE_READ_TIMEOUT
    while True:
        wait = max(0.0, min(settings.SSE_PING_SECONDS, deadline - time.monotonic()))
        done, _ = await asyncio.wait({read}, timeout=wait)
        if done:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"the reply's state was not read within {STATE_READ_TIMEOUT}s")
        yield sse_comment("ping")


def _deleted(message_id: int) -> dict:
    return {
        "message_id": message_id,
        "status": "deleted",
        "code": "not_found",
        "message": "The conversation was deleted.",
        "retryable": False,
    }


async def follow_elsewhere(state: ReplyState, offset: int) -> AsyncIterator[bytes]:
    """Follow a reply generated by another process (or by none: then it is swept as stale).

    Live deltas come through the channel layer; the saved text fills gaps and carries the
    stream while Redis is away. Database reads while the reply is silent are bounded: one per
    ``CHAT_FOLLOWER_CHECK_SECONDS`` per follower (``POLL_SECONDS`` while Redis is away), shared
    by the process's followers of the reply (``shared_state``).
    """
    message_id = state.id
    feed = _Feed(message_id)
    try:
        await feed.start()
        # The saved text, read after joining or shared with a follower that read it less than
        # SHARE_SECONDS ago: what was written after that read comes in the runner's answer to
        # the watch request below (the text after our offset, then every delta).
        read = shared_state(message_id, not_before=time.monotonic() - SHARE_SECONDS)
        async for ping in _wait_for_read(read):
            yield ping
        state = read.result()
        position = offset
        pending: dict[int, streaming.Delta] = {}
        live_since_watch = False
        now = time.monotonic()
        last_progress = last_output = last_check = now
        gap_check_every = settings.CHAT_PERSIST_INTERVAL_SECONDS
        while True:
            if state is None:
                yield final("error", _deleted(message_id), position, position)
                return
            # What the database has beyond our position (saved text, or the final reply).
            if len(state.content) > position:
                yield delta(state.content[position:], len(state.content))
                position = len(state.content)
                last_progress = last_output = time.monotonic()
            if not state.in_progress:
                event, data = final_event(state)
                yield final(event, data, len(state.content), position)
                return
            if feed.joined and (feed.rejoined or not live_since_watch):
                feed.rejoined = False
                await feed.ask_watch(state.runner_channel, position)
            live_since_watch = False
            # Live deltas, until a gap, silence or Redis coming back sends us to the database.
            while True:
                for start in sorted(pending):
                    piece = pending[start]
                    if piece.start > position:
                        break
                    del pending[start]
                    if piece.end > position:
                        yield delta(piece.text[position - piece.start :], piece.end)
                        position = piece.end
                        last_progress = last_output = time.monotonic()
                now = time.monotonic()
                if pending and now - last_check >= gap_check_every:
                    # A gap (deltas sent before we subscribed, or dropped by the layer): fill it
                    # from the saved text, at most once per save interval.
                    break
                silent_for = settings.CHAT_FOLLOWER_CHECK_SECONDS if feed.joined else POLL_SECONDS
                check_at = max(last_progress, last_check) + silent_for
                if pending:
                    check_at = min(check_at, last_check + gap_check_every)
                ping_at = last_output + settings.SSE_PING_SECONDS
                message = await feed.next(max(0.01, min(check_at, ping_at) - now))
                if message is not None and message.get("type") == "chat.delta":
                    piece = streaming.Delta(message["start"], message["text"])
                    live_since_watch = True
                    if piece.end > position:
                        pending[piece.start] = piece
                    continue
                if message is not None and message.get("type") == "chat.end":
                    if message["length"] <= position:
                        yield final(message["event"], message["data"], message["length"], position)
                        return
                    break  # the end is saved before it is published
                now = time.monotonic()
                if now - last_output >= settings.SSE_PING_SECONDS:
                    yield sse_comment("ping")
                    last_output = now
                if feed.rejoined or now >= check_at:
                    break
            read = shared_state(message_id, not_before=time.monotonic() - SHARE_SECONDS)
            async for ping in _wait_for_read(read):
                yield ping
                last_output = time.monotonic()
            state = read.result()
            last_check = time.monotonic()
    finally:
        await feed.close()
