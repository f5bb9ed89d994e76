"""The publisher of a reply's deltas to other processes (chat.streaming.Generation).

Against the real Redis channel layer when REDIS_URL is set (CI's first phase), else against
Channels' in-memory layer, which has the same group semantics.
"""

import asyncio

import pytest
from channels.layers import get_channel_layer

from chat import streaming


@pytest.fixture
def layer(settings):
    if not settings.REDIS_URL:
        settings.REDIS_URL = "in-memory"  # cross_process() only asks whether one is set
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.CHAT_PUBLISH_INTERVAL_SECONDS = 0.01
    return get_channel_layer()


async def _member(layer, message_id: int) -> str:
    channel = await streaming.new_channel(layer)
    await layer.group_add(streaming.group_name(message_id), channel)
    return channel


async def _received(layer, channel: str, *, until_end: bool = True) -> list[dict]:
    """What the channel got: up to the end message, or whatever came within 0.3 s."""
    messages = []
    while True:
        try:
            async with asyncio.timeout(0.3 if not until_end else 5):
                message = await layer.receive(channel)
        except TimeoutError:
            return messages
        messages.append(message)
        if message["type"] == "chat.end":
            return messages


def _deltas(messages: list[dict]) -> list[tuple[int, str]]:
    return [(m["start"], m["text"]) for m in messages if m["type"] == "chat.delta"]


def test_an_unwatched_reply_publishes_only_its_end(layer):
    async def run():
        channel = await _member(layer, 9001)
        generation = streaming.Generation(9001)
        for word in ["Hello", ", ", "world"]:
            generation.append(word)
            await asyncio.sleep(0.02)
        generation.finish("done", {"status": "completed"})
        await generation.wait_published()
        return await _received(layer, channel)

    messages = asyncio.run(run())
    assert [m["type"] for m in messages] == ["chat.end"]
    assert messages[0]["length"] == len("Hello, world")


def test_a_watch_gets_the_text_after_its_offset_then_every_delta(layer):
    async def run():
        channel = await _member(layer, 9002)
        generation = streaming.Generation(9002)
        generation.append("The saved ")
        generation.append("part, ")  # not saved yet: the watcher read offset 10
        await asyncio.sleep(0.05)
        assert await _received(layer, channel, until_end=False) == []
        generation.watch(10)
        await asyncio.sleep(0.05)
        generation.append("then live")
        await asyncio.sleep(0.05)
        generation.append(".")
        generation.finish("done", {"status": "completed"})
        await generation.wait_published()
        return generation.text, await _received(layer, channel)

    text, messages = asyncio.run(run())
    deltas = _deltas(messages)
    assert deltas[0] == (10, "part, ")
    # Contiguous from the watcher's offset to the end: no gap, no overlap.
    position = 10
    for start, piece in deltas:
        assert start == position
        position += len(piece)
    assert text[10:] == "".join(piece for _, piece in deltas)
    assert messages[-1]["type"] == "chat.end" and messages[-1]["length"] == len(text)


def test_a_second_watch_is_not_merged_into_queued_deltas(layer):
    async def run():
        channel = await _member(layer, 9003)
        generation = streaming.Generation(9003)
        generation.watch(0)
        generation.append("abc")  # queued, not sent yet (the publisher has not run)
        generation.watch(1)  # another watcher, at offset 1: "bc" again, from 1
        generation.finish("done", {"status": "completed"})
        await generation.wait_published()
        return await _received(layer, channel)

    deltas = _deltas(asyncio.run(run()))
    # Merging the catch-up into the queued delta would have claimed (0, "abcbc").
    assert deltas == [(0, "abc"), (1, "bc")]


def test_a_watch_after_the_end_publishes_nothing_more(layer):
    async def run():
        channel = await _member(layer, 9004)
        generation = streaming.Generation(9004)
        generation.append("done already")
        generation.finish("done", {"status": "completed"})
        generation.watch(0)
        await generation.wait_published()
        return await _received(layer, channel)

    assert [m["type"] for m in asyncio.run(run())] == ["chat.end"]


def test_the_control_channel_turns_a_watch_request_into_published_deltas(layer):
    async def run():
        member = await _member(layer, 9005)
        generation = streaming.register(9005)
        try:
            runner_channel = await streaming.control_channel()
            generation.append("before the watch; ")
            await streaming.send_watch(runner_channel, 9005, 0)
            for _ in range(300):  # the control listener takes it on its next receive
                if generation.watched:
                    break
                await asyncio.sleep(0.01)
            generation.append("after it")
            generation.finish("done", {"status": "completed"})
            await generation.wait_published()
            return generation.text, await _received(layer, member)
        finally:
            streaming.unregister(generation)
            streaming._control_task.cancel()
            streaming._control_task = None

    text, messages = asyncio.run(run())
    assert "".join(piece for _, piece in _deltas(messages)) == text


def test_the_tasks_that_outlive_a_request_do_not_carry_its_context(layer):
    """The publisher and the control listener run for longer than the request that started
    them: they must not hold its thread-sensitive context (asgiref refuses thread-sensitive
    calls from a context whose request has ended) nor its other context variables."""
    from concurrent.futures import ThreadPoolExecutor

    from asgiref.sync import SyncToAsync, ThreadSensitiveContext

    async def run():
        executor = ThreadPoolExecutor(max_workers=1)
        async with ThreadSensitiveContext(executor=executor):
            await streaming.control_channel()
            generation = streaming.Generation(9002)
        tasks = [generation._publisher, streaming._control_task]
        contexts = [task.get_context() for task in tasks]
        generation.finish("done", {"status": "completed"})
        await generation.wait_published()
        streaming._control_task.cancel()
        executor.shutdown()
        return contexts

    for context in asyncio.run(run()):
        assert SyncToAsync.thread_sensitive_context not in context
