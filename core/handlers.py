"""Django's ASGI handler, with the worker thread of a request's synchronous code kept for reuse.

Under ASGI, Django runs every request inside asgiref's ``ThreadSensitiveContext``: the request's
synchronous code (sync views such as the admin's, the ``request_started``/``request_finished``
receivers, closing the response) runs on a thread of its own. Stock, that thread is new for
every request and is joined when the request ends, and both steps make the event loop wait for
another thread to get the GIL: ``Thread.start()`` blocks until the new thread runs, and asgiref
starts a second thread to join the first. Every request does it (Django closes every response
in the request's thread), so under load each request stalled every stream on the loop twice.

Here each request gets a single-thread executor from a small free list, through asgiref's
``ThreadSensitiveContext(executor=...)`` (the caller owns the executor and asgiref leaves it
running), and gives it back when it ends: one thread per request in flight, as before, but
started once and reused, like a WSGI server's worker threads. A reused thread starts its next
request with Django's ``close_old_connections``, as under WSGI.
"""

from concurrent.futures import ThreadPoolExecutor

import django
from asgiref.sync import ThreadSensitiveContext
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler as DjangoASGIHandler


class ASGIHandler(DjangoASGIHandler):
    """Django's ``ASGIHandler``; only where a request's synchronous code runs differs."""

    def __init__(self):
        super().__init__()
        self._idle: list[ThreadPoolExecutor] = []  # touched on the event loop only

    async def __call__(self, scope, receive, send):
        # Django 6.1's ASGIHandler.__call__, with the executor given to the context.
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = self._idle.pop() if self._idle else self._new_executor()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        except BaseException:
            # Cancelled (the server gave up on the request, or is stopping) or failed: its sync
            # code may still be running on the thread, and request_finished did not run there
            # to give the database connection back. Let that thread end; never reuse it.
            executor.shutdown(wait=False)
            raise
        self._give_back(executor)

    @staticmethod
    def _new_executor() -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")

    def _give_back(self, executor: ThreadPoolExecutor) -> None:
        """Keep the executor of a request that ended normally for the next request, or let its
        thread end (without a join). Django ran the request's last synchronous call (closing
        the response, which sends request_finished) on it and waited for it, so it is idle."""
        if len(self._idle) < settings.ASGI_IDLE_REQUEST_THREADS:
            self._idle.append(executor)
        else:
            executor.shutdown(wait=False)


def get_asgi_application() -> ASGIHandler:
    """``django.core.asgi.get_asgi_application``, returning the handler above."""
    django.setup(set_prefix=False)
    return ASGIHandler()
