"""chat.inbox.Inbox: a local stream's queue of deltas (no database, no server)."""

import asyncio

import pytest

from chat.inbox import Inbox


def test_items_come_out_in_order_and_a_get_waits_for_a_put():
    async def scenario():
        inbox = Inbox()
        reader = asyncio.create_task(inbox.get())
        await asyncio.sleep(0.01)
        assert not reader.done()
        inbox.put_nowait("a")
        inbox.put_nowait("b")
        first = await reader
        rest = [inbox.get_nowait()]
        assert inbox.empty()
        inbox.put_nowait("c")
        rest.append(await inbox.get())
        return [first, *rest]

    assert asyncio.run(scenario()) == ["a", "b", "c"]


def test_a_get_cut_by_a_timeout_leaves_the_item_for_the_next_get():
    async def scenario():
        inbox = Inbox()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await inbox.get()
        # Put and cancelled in the same step of the loop: the reader was woken but never ran.
        reader = asyncio.create_task(inbox.get())
        await asyncio.sleep(0)
        inbox.put_nowait("kept")
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        assert not inbox.empty()
        return await inbox.get()

    assert asyncio.run(scenario()) == "kept"


def test_an_empty_inbox_raises_queue_empty():
    with pytest.raises(asyncio.QueueEmpty):
        Inbox().get_nowait()
