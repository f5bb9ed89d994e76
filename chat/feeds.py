"""A stream follower's membership of its reply's channel group (``chat.followers``), kept
across Redis outages."""

import asyncio
import contextlib
import logging
import time

from channels.layers import get_channel_layer

from . import streaming

logger = logging.getLogger("chat.followers")  # the stream lines keep their logger name

# How long joining the group or asking for a watch may take before Redis counts as away (a hung
# Redis would otherwise hold them for the socket timeout), and how often to try joining again.
REDIS_CALL_TIMEOUT = 2.0
REJOIN_SECONDS = 2.0
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


_last_away_warning = float("-inf")


class Feed:
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
        assert self.layer is not None  # a feed joins only when replies cross processes
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
