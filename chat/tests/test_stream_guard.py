"""The stream's own guarantees, in process: a failure after the response started still ends the
stream with a final event, the per-user count of open streams, and the final event's id."""

import asyncio

import pytest

from chat import followers, sse_response, stream_limits, streaming
from chat.stream_limits import take_slot


def _collect(events) -> list[bytes]:
    async def run():
        return [chunk async for chunk in events]

    return asyncio.run(run())


def test_a_failure_after_the_response_started_ends_the_stream_with_stream_interrupted(settings):
    settings.CHAT_MAX_STREAMS_PER_USER = 1

    async def failing():
        yield followers.delta("Hello", 5)
        raise ConnectionError("the channel layer's connection was lost")

    slot = stream_limits.take_slot(41)
    chunks = _collect(sse_response.framed(failing(), 7, slot))
    assert chunks[1] == b'id: 5\nevent: delta\ndata: {"text":"Hello"}\n\n'
    last = chunks[-1].decode()
    assert last.startswith("event: error\n")  # no id: the client keeps offset 5
    assert '"code":"stream_interrupted"' in last and '"status":"streaming"' in last
    assert '"retryable":true' in last and '"message_id":7' in last
    # The stream gave its place back.
    assert stream_limits.open_streams(41) == 0
    assert stream_limits.take_slot(41) is not None


def test_open_streams_are_counted_per_user(settings):
    settings.CHAT_MAX_STREAMS_PER_USER = 2
    first, second = stream_limits.take_slot(42), stream_limits.take_slot(42)
    assert first and second
    assert stream_limits.take_slot(42) is None
    assert stream_limits.take_slot(43) is not None  # another user
    first.release()
    first.release()  # once only
    assert stream_limits.open_streams(42) == 1
    assert stream_limits.take_slot(42) is not None


def test_the_final_events_id_is_never_below_what_the_reader_has():
    assert followers.final("done", {}, 10, 4).startswith(b"id: 10\n")
    assert followers.final("error", {}, 10, 25).startswith(b"id: 25\n")


def test_a_local_stream_whose_runner_ended_without_an_end_is_interrupted(settings):
    """A runner task that ends without sending the end (a bug) must not leave its local
    streams pinging forever: they end with stream_interrupted and the reply is unregistered,
    so that a reconnect reads the stored reply."""
    settings.SSE_PING_SECONDS = 0.05
    settings.CHAT_MAX_STREAMS_PER_USER = 1

    async def run():
        generation = streaming.register(9100, 44)
        generation.task = asyncio.ensure_future(asyncio.sleep(0))
        generation.append("partial")
        await generation.task
        events = followers.follow_local(generation, 0)
        async with asyncio.timeout(5):
            chunks = [c async for c in sse_response.framed(events, 9100, take_slot(44))]
        return chunks, streaming.local_generation(9100)

    chunks, left = asyncio.run(run())
    assert b'"text":"partial"' in chunks[1]
    assert b'"code":"stream_interrupted"' in chunks[-1]
    assert left is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CHAT_MAX_STREAMS_PER_USER", "0", "CHAT_MAX_STREAMS_PER_USER must be at least 1, not 0."),
        ("CHAT_FOLLOWER_CHECK_SECONDS", "0", "CHAT_FOLLOWER_CHECK_SECONDS must be above 0"),
        ("SSE_WRITE_TIMEOUT_SECONDS", "-1", "SSE_WRITE_TIMEOUT_SECONDS must be above 0"),
    ],
)
def test_a_stream_setting_out_of_range_is_refused_by_name(name, value, message):
    from aiproject.tests.test_settings import PRODUCTION, manage

    result = manage("check", env={**PRODUCTION, name: value})
    assert result.returncode != 0
    assert message in result.stderr
