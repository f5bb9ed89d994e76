"""A local subscriber's queue of a reply's deltas (``chat.streaming.Generation.subscribe``).

An open stream on the reply's own process keeps one for as long as it is open. An
``asyncio.Queue`` costs about 3 KiB of objects (four deques, an Event with a fifth, a counter)
for what is one reader waiting on one writer; this is a list, a read position and the reader's
future while it waits: about 0.2 KiB (docs/architecture.md, "Memory of an idle stream").
"""

import asyncio
from typing import Any


class Inbox:
    """An unbounded FIFO with one reader task; ``put_nowait`` may be called by anyone on the
    event loop. As with ``asyncio.Queue``, a ``get`` that is cancelled leaves its item in the
    inbox: nothing is lost."""

    __slots__ = ("_head", "_items", "_waiter")

    def __init__(self):
        self._items: list[Any] = []
        self._head = 0  # items before it were taken; the list is cleared when all are
        self._waiter: asyncio.Future | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return self._head == len(self._items)

    def get_nowait(self) -> Any:
        if self.empty():
            raise asyncio.QueueEmpty
        item = self._items[self._head]
        self._head += 1
        if self._head == len(self._items):
            self._items.clear()
            self._head = 0
        return item

    async def get(self) -> Any:
        while self.empty():
            if self._waiter is not None:
                raise RuntimeError("an Inbox has one reader")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.get_nowait()
