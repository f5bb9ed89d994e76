"""Django's ASGI handler, with the worker threads of requests' synchronous code kept for reuse
and not held by a response that streams.

Under ASGI, Django runs every request inside asgiref's ``ThreadSensitiveContext``: the request's
synchronous code (sync views such as the admin's, the ``request_started``/``request_finished``
receivers, closing the response) runs on a thread of its own. Stock, that thread is new for
every request and is joined when the request ends, and both steps make the event loop wait for
another thread to get the GIL: ``Thread.start()`` blocks until the new thread runs, and asgiref
starts a second thread to join the first. Every request does it (Django closes every response
in the request's thread), so under load each request stalled every stream on the loop twice.

Here each request's context gets a ``_RequestThread`` through asgiref's
``ThreadSensitiveContext(executor=...)`` (the caller owns the executor and asgiref leaves it
running): it takes a single-thread executor from the handler's free list when the request's
first synchronous call comes and gives it back when the request ends, so threads are started
once and reused, like a WSGI server's worker threads. A reused thread starts its next request
with Django's ``close_old_connections``, as under WSGI.

A response with an async iterator (an event stream) needs no thread while it streams: once the
view and the middleware are done, the handler lets the request's thread go (after closing its
database connections) and takes an idle one again only for a synchronous call that comes later
(closing the response, which sends ``request_finished``). So N open streams hold no thread each
(docs/architecture.md, "Memory of an idle stream").
"""

from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextvars import ContextVar

import django
from asgiref.sync import ThreadSensitiveContext
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler as DjangoASGIHandler
from django.db import close_old_connections


class _RequestThread(Executor):
    """The executor of one request's thread-sensitive calls: one of the handler's single-thread
    executors, taken when a call comes and held until the handler lets it go.

    It runs one call at a time on one thread, as asgiref requires: a held executor runs the
    calls in order on its one thread, and it is let go only when the last call has ended, so a
    later call (on whichever thread it takes then) never runs beside an earlier one. Used on
    the event loop's thread only (``loop.run_in_executor`` calls ``submit`` there).
    """

    __slots__ = ("_executor", "_handler", "_last")

    def __init__(self, handler: "ASGIHandler"):
        self._handler = handler
        self._executor: ThreadPoolExecutor | None = None
        self._last: Future | None = None  # the last call's; all before it ended before it

    def submit(self, fn, /, *args, **kwargs) -> Future:
        if self._executor is None:
            self._executor = self._handler._take()
        self._last = self._executor.submit(fn, *args, **kwargs)
        return self._last

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """asgiref never shuts down an executor it was given; the handler ends this one."""

    def _idle(self) -> bool:
        return self._last is None or self._last.done()

    def let_go(self) -> None:
        """Give the thread back while the request waits on async code alone (a streaming
        response), if nothing of the request runs on it; a later call takes one again."""
        if self._executor is None or not self._idle():
            return
        executor, self._executor = self._executor, None
        self._last = None  # an open stream keeps no ended call's future (~1.5 KiB)
        # The request has used its database connection on this thread (the view, the
        # request_started receivers); request_finished may run on another thread, so close
        # it here, as request_finished would. Queued first: it runs before any later request's
        # work on that thread, and the loop does not wait for it.
        executor.submit(close_old_connections)
        self._handler._give_back(executor)

    def end(self, *, clean: bool) -> None:
        """The request is over: keep its thread for the next request if it ended normally and
        nothing of it runs there any more, else let that thread end without a join."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if clean and self._idle():
            self._handler._give_back(executor)
        else:
            executor.shutdown(wait=False)


# The request being handled in this task (set by ASGIHandler.__call__, read in send_response).
_request_thread: ContextVar[_RequestThread | None] = ContextVar("request_thread", default=None)


class ASGIHandler(DjangoASGIHandler):
    """Django's ``ASGIHandler``; only where a request's synchronous code runs differs."""

    def __init__(self):
        super().__init__()
        self._idle: list[ThreadPoolExecutor] = []  # touched on the event loop only

    async def __call__(self, scope, receive, send):
        # Django 6.1's ASGIHandler.__call__, with the executor given to the context.
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        thread = _RequestThread(self)
        token = _request_thread.set(thread)
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self.handle(scope, receive, send)
        except BaseException:
            # Cancelled (the server gave up on the request, or is stopping) or failed: its sync
            # code may still be running on the thread, and request_finished did not run there
            # to give the database connection back. Let that thread end; never reuse it.
            thread.end(clean=False)
            raise
        finally:
            _request_thread.reset(token)
        # Django ran the request's last synchronous call (closing the response, which sends
        # request_finished) on the thread and waited for it, so it is idle.
        thread.end(clean=True)

    async def send_response(self, response, send):
        if response.streaming and response.is_async:
            # The view and the middleware are done, and the iterator is async: the request's
            # thread would only wait for the stream's end to close the response.
            thread = _request_thread.get()
            if thread is not None:
                thread.let_go()
        await super().send_response(response, send)

    @staticmethod
    def _new_executor() -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")

    def _take(self) -> ThreadPoolExecutor:
        return self._idle.pop() if self._idle else self._new_executor()

    def _give_back(self, executor: ThreadPoolExecutor) -> None:
        """Keep an idle executor for the next request, or let its thread end (without a join)
        once the work queued on it is done."""
        if len(self._idle) < settings.ASGI_IDLE_REQUEST_THREADS:
            self._idle.append(executor)
        else:
            executor.shutdown(wait=False)


def get_asgi_application() -> ASGIHandler:
    """``django.core.asgi.get_asgi_application``, returning the handler above."""
    django.setup(set_prefix=False)
    return ASGIHandler()
