"""The event sources of a reply's stream: a finished reply, one generated in this process, and
one generated in another process (``chat.stream_views`` frames and guards them).

Every event's ``id`` is a character offset, and a final event's ``id`` is never below the last
delta ``id`` sent on that connection: a reader that saw more text than was stored (the runner's
process was killed between two saves) keeps its offset, and is never sent text it has again.
"""

import asyncio
import enum
import logging
import time
from collections.abc import AsyncIterator, Iterator

from django.conf import settings

from analytics.metrics import STREAM_STATE_READS
from core.db_thread import db

from . import selectors, services, streaming
from .feeds import Feed
from .sse import sse_comment, sse_delta, sse_event
from .state import ReplyState, final_event

logger = logging.getLogger(__name__)

# While Redis is away, a follower reads the saved text this often (shared per reply, below).
POLL_SECONDS = 1.0
# A state read started this recently is shared by the process's followers of the same reply.
SHARE_SECONDS = 1.0
# A state read that takes longer than this (a lock, a database that stopped answering without
# closing its connections) ends the stream with stream_interrupted; pings go on while it waits.
STATE_READ_TIMEOUT = 10.0


def delta(text: str, end: int) -> bytes:
    return sse_delta(text, end)


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
                    # A cancelled get leaves its item in the inbox: nothing is lost.
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
    return selectors.reply_state(message_id)


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


class _Phase(enum.Enum):
    READ = "read"  # wait for the reply's saved state (shared, see shared_state)
    CATCH_UP = "catch up"  # send what the saved state has beyond our position, or its end
    LISTEN = "listen"  # live deltas, until a gap, silence or Redis coming back
    ENDED = "ended"


class _Elsewhere:
    """One reader of a reply generated by another process, moving between the phases above.

    ``position``: the offset of the text this reader has. ``pending``: live deltas that came
    ahead of it (by start offset), sent once the gap before them is filled.
    """

    def __init__(self, state: ReplyState, offset: int):
        self.message_id = state.id
        self.feed = Feed(state.id)
        self.state: ReplyState | None = state
        self.phase = _Phase.READ
        self.position = offset
        self.pending: dict[int, streaming.Delta] = {}
        self.live_since_watch = False
        self.last_progress = self.last_output = self.last_check = time.monotonic()

    async def events(self) -> AsyncIterator[bytes]:
        steps = {
            _Phase.READ: self._read,
            _Phase.CATCH_UP: self._catch_up,
            _Phase.LISTEN: self._listen,
        }
        try:
            await self.feed.start()
            # The saved text, read after joining or shared with a follower that read it less
            # than SHARE_SECONDS ago: what was written after that read comes in the runner's
            # answer to the watch request (the text after our offset, then every delta).
            async for ping in self._read():
                yield ping
            self.last_progress = self.last_output = self.last_check
            while self.phase is not _Phase.ENDED:
                async for event in steps[self.phase]():
                    yield event
        finally:
            await self.feed.close()

    async def _read(self) -> AsyncIterator[bytes]:
        read = shared_state(self.message_id, not_before=time.monotonic() - SHARE_SECONDS)
        async for ping in _wait_for_read(read):
            yield ping
            self.last_output = time.monotonic()
        self.state = read.result()
        self.last_check = time.monotonic()
        self.phase = _Phase.CATCH_UP

    async def _catch_up(self) -> AsyncIterator[bytes]:
        state, self.phase = self.state, _Phase.ENDED
        if state is None:
            yield final("error", _deleted(self.message_id), self.position, self.position)
            return
        if len(state.content) > self.position:
            yield delta(state.content[self.position :], len(state.content))
            self.position = len(state.content)
            self.last_progress = self.last_output = time.monotonic()
        if not state.in_progress:
            event, data = final_event(state)
            yield final(event, data, len(state.content), self.position)
            return
        feed = self.feed
        if feed.joined and (feed.rejoined or not self.live_since_watch):
            feed.rejoined = False
            await feed.ask_watch(state.runner_channel, self.position)
        self.live_since_watch = False
        self.phase = _Phase.LISTEN

    def _in_order(self) -> Iterator[bytes]:
        """Send the pending deltas that continue our text."""
        for start in sorted(self.pending):
            piece = self.pending[start]
            if piece.start > self.position:
                break
            del self.pending[start]
            if piece.end > self.position:
                yield delta(piece.text[self.position - piece.start :], piece.end)
                self.position = piece.end
                self.last_progress = self.last_output = time.monotonic()

    async def _listen(self) -> AsyncIterator[bytes]:
        self.phase = _Phase.READ  # unless the end comes live
        gap_check_every = settings.CHAT_PERSIST_INTERVAL_SECONDS
        while True:
            for event in self._in_order():
                yield event
            now = time.monotonic()
            if self.pending and now - self.last_check >= gap_check_every:
                # A gap (deltas sent before we subscribed, or dropped by the layer): fill it
                # from the saved text, at most once per save interval.
                return
            silent_for = settings.CHAT_FOLLOWER_CHECK_SECONDS if self.feed.joined else POLL_SECONDS
            check_at = max(self.last_progress, self.last_check) + silent_for
            if self.pending:
                check_at = min(check_at, self.last_check + gap_check_every)
            ping_at = self.last_output + settings.SSE_PING_SECONDS
            message = await self.feed.next(max(0.01, min(check_at, ping_at) - now)) or {}
            kind = message.get("type")  # None: nothing came in time
            if kind == "chat.delta":
                piece = streaming.Delta(message["start"], message["text"])
                self.live_since_watch = True
                if piece.end > self.position:
                    self.pending[piece.start] = piece
                continue
            if kind == "chat.end":
                if message["length"] <= self.position:
                    yield final(message["event"], message["data"], message["length"], self.position)
                    self.phase = _Phase.ENDED
                return  # else: the end is saved before it is published
            now = time.monotonic()
            if now - self.last_output >= settings.SSE_PING_SECONDS:
                yield sse_comment("ping")
                self.last_output = now
            if self.feed.rejoined or now >= check_at:
                return


def follow_elsewhere(state: ReplyState, offset: int) -> AsyncIterator[bytes]:
    """Follow a reply generated by another process (or by none: then it is swept as stale).

    Live deltas come through the channel layer; the saved text fills gaps and carries the
    stream while Redis is away. Database reads while the reply is silent are bounded: one per
    ``CHAT_FOLLOWER_CHECK_SECONDS`` per follower (``POLL_SECONDS`` while Redis is away), shared
    by the process's followers of the reply (``shared_state``).
    """
    return _Elsewhere(state, offset).events()
