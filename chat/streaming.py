"""Fan-out of a reply's deltas to its subscribers, in this process and in others.

The token hot path is in-process: the runner appends a delta and every local subscriber's queue
gets it at once, with no network hop and no database. Subscribers in other processes get deltas
through the channel layer group of the message, sent by a publisher task that coalesces what
queued up while Redis answered and sends at most once per ``CHAT_PUBLISH_INTERVAL_SECONDS``, so
the runner never waits on Redis.

Deltas go to the group only once a subscriber elsewhere asked for them: it joins the group,
reads the saved text, then sends ``generation.watch`` with its offset to the runner's control
channel; the runner then publishes the text after that offset and every delta after it. A
reply nobody follows elsewhere (nearly all of them) costs one ``group_send``, its end, instead
of one per ``CHAT_PUBLISH_INTERVAL_SECONDS`` (9% of one process's CPU at 50 streams;
docs/performance.md). The layer can drop messages (a full channel is skipped silently, and a
watch request can be lost too), so remote subscribers never rely on it alone: they fill gaps
from the text the runner saves at a bounded rate, and ask again (see ``chat.stream_views``).
"""

import asyncio
import contextlib
import contextvars
import hmac
import logging
from dataclasses import dataclass

from channels.layers import get_channel_layer
from django.conf import settings

from .inbox import Inbox

logger = logging.getLogger(__name__)


def cross_process() -> bool:
    """True when other server processes may hold subscribers or runners (Redis channel layer)."""
    return bool(settings.REDIS_URL)


async def new_channel(layer) -> str:
    """A process-local channel of ``layer``: the control channel and each remote follower's.

    All of one process's channels must share one prefix. channels_redis receives every
    process-local channel under one lock, and its holder pops only from the Redis list of its
    own prefix (``non_local_name``): with two prefixes, a control channel waiting for stop
    requests kept a follower's deltas unread until its blocking pop timed out, and the other
    way round (seen in chat/tests/test_fanout.py).
    """
    return await layer.new_channel("chat")


def group_name(message_id: int) -> str:
    return f"chat.msg.{message_id}"


@dataclass(frozen=True, slots=True)
class Delta:
    start: int
    text: str

    @property
    def end(self) -> int:
        return self.start + len(self.text)


@dataclass(frozen=True, slots=True)
class End:
    event: str
    data: dict
    length: int


class Generation:
    """The in-process state of one reply being generated."""

    def __init__(self, message_id: int, user_id: int | None = None, session_key: str = ""):
        self.message_id = message_id
        self.user_id = user_id  # the owner: a stream of it on this process needs no database
        self._session_key = session_key  # of the request that posted the message
        self._chunks: list[str] = []
        self.length = 0
        self._subscribers: set[Inbox] = set()
        self.end: End | None = None
        # The runner task (kept referenced), and the part of it a stop request cancels.
        self.task: asyncio.Task | None = None
        self.cancellable: asyncio.Task | None = None
        self.stop_requested = False
        self.watched = False  # a subscriber in another process asked for the deltas
        self._outbox: asyncio.Queue | None = None
        self._publisher: asyncio.Task | None = None
        self._send_failing = False
        if cross_process():
            self._outbox = asyncio.Queue()
            self._publisher = outliving_task(self._publish())

    @property
    def text(self) -> str:
        if len(self._chunks) > 1:
            self._chunks = ["".join(self._chunks)]
        return self._chunks[0] if self._chunks else ""

    def ended_without_end(self) -> bool:
        """True when the runner task is over but never sent the end (a bug): local streams
        would otherwise wait for it forever."""
        return self.end is None and self.task is not None and self.task.done()

    def posted_with(self, session_key: str | None) -> bool:
        """True when ``session_key`` is the session that posted this reply's message.

        That session may open the reply's stream on this process without a database lookup:
        whoever holds it was the user a moment ago, and it opens this one reply only, only
        while it is being generated (a session ended meanwhile can still read it to its end).
        """
        own = self._session_key
        if not session_key or not own:
            return False
        return hmac.compare_digest(session_key.encode(), own.encode())

    def append(self, text: str) -> None:
        delta = Delta(self.length, text)
        self._chunks.append(text)
        self.length += len(text)
        for queue in self._subscribers:
            queue.put_nowait(delta)
        if self.watched and self._outbox is not None:  # watched: only across processes
            self._outbox.put_nowait(delta)

    def finish(self, event: str, data: dict) -> None:
        self.end = End(event, data, self.length)
        for queue in self._subscribers:
            queue.put_nowait(self.end)
        if self._outbox is not None:
            self._outbox.put_nowait(self.end)

    def watch(self, offset: int) -> None:
        """Publish the text after ``offset`` and, from now on, every delta to other processes.

        Asked for by a subscriber in another process (``generation.watch``). Its offset is the
        text it read from the database after joining the group, so what it gets from here on
        joins on without a gap. The end is published whether or not anyone watches.
        """
        if self._outbox is None or self.end is not None:
            return
        self.watched = True
        offset = max(0, min(offset, self.length))
        if offset < self.length:
            self._outbox.put_nowait(Delta(offset, self.text[offset:]))

    def subscribe(self, offset: int) -> tuple[str, Inbox]:
        """Return the text after ``offset`` so far and a queue of what comes next.

        Both are taken in one step of the event loop, so nothing falls between them.
        """
        queue = Inbox()
        if self.end is not None:
            queue.put_nowait(self.end)
        else:
            self._subscribers.add(queue)
        return self.text[offset:], queue

    def unsubscribe(self, queue: Inbox) -> None:
        self._subscribers.discard(queue)

    def request_stop(self) -> None:
        if self.stop_requested or self.end is not None:
            return
        self.stop_requested = True
        if self.cancellable is not None:
            self.cancellable.cancel()

    async def _publish(self) -> None:
        layer = get_channel_layer()
        group = group_name(self.message_id)
        outbox = self._outbox
        assert outbox is not None  # started with it
        while True:
            item = await outbox.get()
            # Coalesce what queued up while the last send was in flight into one message (a
            # watch's catch-up may start before what queued: it is sent on its own).
            while isinstance(item, Delta) and not outbox.empty():
                following = outbox.get_nowait()
                if isinstance(following, Delta) and following.start == item.end:
                    item = Delta(item.start, item.text + following.text)
                else:
                    await self._send(layer, group, item)
                    item = following
            await self._send(layer, group, item)
            if isinstance(item, End):
                return
            # At most one message per interval: what the reply writes meanwhile queues up and
            # goes out as one (remote subscribers are a reconnect's case; local ones are not
            # delayed, they read the in-process fan-out).
            await asyncio.sleep(settings.CHAT_PUBLISH_INTERVAL_SECONDS)

    async def _send(self, layer, group: str, item: Delta | End) -> None:
        if isinstance(item, Delta):
            message = {"type": "chat.delta", "start": item.start, "text": item.text}
        else:
            message = {
                "type": "chat.end",
                "event": item.event,
                "data": item.data,
                "length": item.length,
            }
        try:
            await layer.group_send(group, message)
        except Exception:  # subscribers elsewhere recover from the saved text
            if not self._send_failing:  # once per outage, not 20 times a second
                logger.warning(
                    "channel layer send failed for message %s", self.message_id, exc_info=True
                )
            self._send_failing = True
        else:
            if self._send_failing:
                logger.info("channel layer sends of message %s work again", self.message_id)
            self._send_failing = False

    async def wait_published(self) -> None:
        """Wait (briefly) until the end event went out to other processes."""
        if self._publisher is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(5):
                    await asyncio.shield(self._publisher)


_generations: dict[int, Generation] = {}
_control_channel: str = ""
_control_task: asyncio.Task | None = None


def local_generation(message_id: int) -> Generation | None:
    return _generations.get(message_id)


def register(message_id: int, user_id: int | None = None, session_key: str = "") -> Generation:
    generation = Generation(message_id, user_id, session_key)
    _generations[message_id] = generation
    return generation


def unregister(generation: Generation) -> None:
    if _generations.get(generation.message_id) is generation:
        del _generations[generation.message_id]


def outliving_task(coroutine) -> asyncio.Task:
    """Start a task that outlives the request that starts it, in a fresh context: it carries
    none of the request's context variables, asgiref's thread-sensitive context among them
    (whose executor goes back to the pool when the request ends, core/handlers.py)."""
    return asyncio.create_task(coroutine, context=contextvars.Context())


async def control_channel() -> str:
    """Return this process's channel for stop requests, listening on it from the first call."""
    global _control_channel, _control_task
    if not cross_process():
        return ""
    if _control_task is None or _control_task.done():
        layer = get_channel_layer()
        _control_channel = await new_channel(layer)
        _control_task = outliving_task(_listen_for_control(layer, _control_channel))
    return _control_channel


async def _listen_for_control(layer, channel: str) -> None:
    while True:
        try:
            message = await layer.receive(channel)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("control channel receive failed; retrying", exc_info=True)
            await asyncio.sleep(1)
            continue
        generation = _generations.get(message.get("message_id"))
        if generation is None:
            continue
        if message.get("type") == "generation.stop":
            generation.request_stop()
        elif message.get("type") == "generation.watch":
            offset = message.get("offset")
            generation.watch(offset if isinstance(offset, int) else 0)


async def send_stop(runner_channel: str, message_id: int) -> None:
    """Ask the process that runs ``message_id`` to stop it (it may be this one)."""
    generation = _generations.get(message_id)
    if generation is not None:
        generation.request_stop()
        return
    if runner_channel and cross_process():
        layer = get_channel_layer()
        try:
            await layer.send(runner_channel, {"type": "generation.stop", "message_id": message_id})
        except Exception:  # a full channel, Redis away: the runner reads the flag at its next save
            logger.warning("stop request for message %s not sent", message_id, exc_info=True)


async def send_watch(runner_channel: str, message_id: int, offset: int) -> None:
    """Ask the process that runs ``message_id`` to publish its deltas after ``offset``."""
    if runner_channel and cross_process():
        layer = get_channel_layer()
        await layer.send(
            runner_channel, {"type": "generation.watch", "message_id": message_id, "offset": offset}
        )
