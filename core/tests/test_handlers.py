"""The ASGI handler that keeps requests' worker threads for reuse (core/handlers.py).

Requests go through the real handler and Django's request cycle (signals, middleware, the
response's close), driven by asgiref's ApplicationCommunicator as an ASGI server would.
"""

import asyncio
import contextlib
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from asgiref.testing import ApplicationCommunicator
from django.core.signals import request_finished
from django.db import connections

from aiproject import asgi
from core.handlers import ASGIHandler
from core.tests import handler_urls

pytestmark = pytest.mark.urls("core.tests.handler_urls")


def http_scope(query: str = "", path: str = "/thread") -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }


async def get(handler, query: str = "") -> dict:
    communicator = ApplicationCommunicator(handler, http_scope(query))
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(10)
    assert start["status"] == 200, start
    body = b""
    while True:
        message = await communicator.receive_output(10)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await communicator.wait(10)
    return json.loads(body)


def test_the_served_application_uses_this_handler():
    http_app = asgi.application.application_mapping["http"]
    # Under the wrappers (the stream write timeout, the static files in development).
    while not isinstance(http_app, ASGIHandler) and hasattr(http_app, "application"):
        http_app = http_app.application
    assert isinstance(http_app, ASGIHandler)


def test_one_request_after_another_reuses_one_thread():
    handler = ASGIHandler()

    async def scenario():
        return [await get(handler) for _ in range(3)]

    first, *later = asyncio.run(scenario())
    # The same thread served all three, and it is the handler's only one.
    assert {r["ident"] for r in later} == {first["ident"]}
    assert first["ident"] != threading.get_ident()
    assert first["name"].startswith("request")
    assert len(handler._idle) == 1


def test_requests_in_flight_at_once_each_have_a_thread_of_their_own():
    handler = ASGIHandler()

    async def three_at_once():
        return await asyncio.gather(*(get(handler, "sleep=0.2") for _ in range(3)))

    replies = asyncio.run(three_at_once())
    assert len({r["ident"] for r in replies}) == 3
    assert len(handler._idle) == 3
    again = asyncio.run(three_at_once())
    assert {r["ident"] for r in again} == {r["ident"] for r in replies}


@pytest.mark.django_db(transaction=True)
def test_a_reused_thread_has_given_its_database_connection_back():
    # Django's request_finished receiver (close_old_connections) still runs on the request's
    # thread, so the next request on that thread starts without the last one's connection.
    handler = ASGIHandler()
    asyncio.run(get(handler, "query=1"))
    (executor,) = handler._idle
    assert executor.submit(lambda: connections["default"].connection is None).result(5)
    asyncio.run(get(handler, "query=1"))


def test_threads_beyond_the_idle_limit_end(settings):
    settings.ASGI_IDLE_REQUEST_THREADS = 0
    handler = ASGIHandler()
    reply = asyncio.run(get(handler))
    assert handler._idle == []
    deadline = time.monotonic() + 5
    while any(t.ident == reply["ident"] for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the request's thread did not end"
        time.sleep(0.01)


def test_a_cancelled_request_does_not_give_its_thread_back():
    """The server cancels a request (a client gone for good, a shutdown) while its sync view
    runs: that thread is still busy and never handed to the next request."""
    handler = ASGIHandler()
    handler_urls.recorded.clear()

    async def scenario():
        communicator = ApplicationCommunicator(handler, http_scope("sleep=0.5&record=1"))
        await communicator.send_input({"type": "http.request", "body": b""})
        deadline = time.monotonic() + 5
        while not handler_urls.recorded:  # the view is running on its thread
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        communicator.future.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await communicator.future
        return await get(handler)

    after = asyncio.run(scenario())
    (cancelled,) = handler_urls.recorded
    assert after["ident"] != cancelled
    assert len(handler._idle) == 1  # only the later request's thread
    deadline = time.monotonic() + 5
    while any(t.ident == cancelled for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the cancelled request's thread did not end"
        time.sleep(0.01)


class CountedHandler(ASGIHandler):
    """The handler, with its threads named apart from other handlers' so that they can be
    counted."""

    def __init__(self):
        super().__init__()
        self.prefix = f"counted-{uuid.uuid4().hex[:8]}"

    def _new_executor(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.prefix)

    def threads(self) -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith(self.prefix)]


async def open_stream(handler, query: str = "") -> ApplicationCommunicator:
    """Start a request of the streaming view and read its headers and first line."""
    communicator = ApplicationCommunicator(handler, http_scope(query, "/stream"))
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(10)
    assert start["status"] == 200, start
    first = await communicator.receive_output(10)
    assert first == {"type": "http.response.body", "body": b"open\n", "more_body": True}
    return communicator


async def finish(communicator: ApplicationCommunicator) -> bytes:
    body = b""
    while True:
        message = await communicator.receive_output(10)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await communicator.wait(10)
    return body


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_open_streams_do_not_hold_a_thread_each():
    handler = CountedHandler()

    async def scenario():
        handler_urls.gate = asyncio.Event()
        streams = [await open_stream(handler) for _ in range(10)]
        held = handler.threads()
        handler_urls.gate.set()
        assert [await finish(s) for s in streams] == [b"end\n"] * 10
        return held

    held = asyncio.run(scenario())
    # Each request's synchronous part (request_started, the view) ran on the thread the
    # previous stream had let go; an open stream holds none.
    assert len(held) == 1, [t.name for t in held]


def test_streams_opened_at_once_keep_no_more_threads_than_the_idle_limit(settings):
    settings.ASGI_IDLE_REQUEST_THREADS = 2
    handler = CountedHandler()

    async def scenario():
        handler_urls.gate = asyncio.Event()
        streams = await asyncio.gather(*(open_stream(handler) for _ in range(10)))
        # Ten requests at once had a thread each for their synchronous part; while their
        # responses stream, the threads beyond the idle limit end.
        await asyncio.to_thread(
            wait_until, lambda: len(handler.threads()) <= 2, "the open streams kept threads"
        )
        handler_urls.gate.set()
        assert [await finish(s) for s in streams] == [b"end\n"] * 10

    asyncio.run(scenario())


@pytest.mark.django_db(transaction=True)
def test_a_stream_that_let_its_thread_go_still_closes_and_gives_connections_back():
    handler = CountedHandler()
    finished: list[int] = []

    def on_finished(**kwargs):
        finished.append(threading.get_ident())

    def without_connection(executor) -> bool:
        return executor.submit(lambda: connections["default"].connection is None).result(5)

    async def scenario():
        handler_urls.gate = asyncio.Event()
        communicator = await open_stream(handler, "query=1")
        # The view opened a connection on the request's thread; the thread, back in the free
        # list while the response streams, has closed it.
        (executor,) = handler._idle
        assert without_connection(executor)
        handler_urls.gate.set()  # the stream's own thread-sensitive call queries again
        return await finish(communicator)

    request_finished.connect(on_finished)
    try:
        assert asyncio.run(scenario()) == b"end\n"
    finally:
        request_finished.disconnect(on_finished)
    # The response was closed (request_finished) on a thread of the handler, and every thread
    # the request used is idle again without a connection.
    assert len(finished) == 1
    assert finished[0] in {t.ident for t in handler.threads()}
    assert handler._idle
    assert all(without_connection(executor) for executor in handler._idle)


def test_a_stream_cancelled_during_its_thread_sensitive_call_does_not_give_that_thread_back():
    handler = CountedHandler()
    handler_urls.recorded.clear()

    async def scenario():
        handler_urls.gate = asyncio.Event()
        communicator = await open_stream(handler, "sleep=0.5&record=1")
        handler_urls.gate.set()
        deadline = time.monotonic() + 5
        while not handler_urls.recorded:  # the stream's sync call is running on a thread
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        communicator.future.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await communicator.future
        return await get(handler)

    after = asyncio.run(scenario())
    (busy,) = handler_urls.recorded
    assert after["ident"] != busy
    wait_until(
        lambda: all(t.ident != busy for t in threading.enumerate()),
        "the cancelled stream's thread did not end",
    )
