"""URLs for core/tests/test_handlers.py: sync views that report the thread they ran on, and a
streaming one that stays open until the test lets it end."""

import asyncio
import threading
import time

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.db import connection
from django.http import JsonResponse, StreamingHttpResponse
from django.urls import path

# Idents of the threads that ran a request with ?record=1, in order.
recorded: list[int] = []
# Set by a test (inside its event loop): the open streams end when it is set.
gate: asyncio.Event | None = None


def thread(request):
    if request.GET.get("record"):
        recorded.append(threading.get_ident())
    time.sleep(float(request.GET.get("sleep", 0)))
    if request.GET.get("query"):
        get_user_model().objects.exists()
        assert connection.connection is not None
    return JsonResponse({"ident": threading.get_ident(), "name": threading.current_thread().name})


def stream(request):
    """A sync view (on the request's thread) whose response streams from an async iterator:
    ``open``, then, once ``gate`` is set, the ``thread`` view's work in a thread-sensitive call
    (``record``, ``sleep``, ``query`` as there) and ``end``."""
    if request.GET.get("query"):
        get_user_model().objects.exists()  # the request's database connection, on its thread

    async def events():
        yield b"open\n"
        await gate.wait()
        # A thread-sensitive call while the response streams takes a thread again.
        await sync_to_async(thread)(request)
        yield b"end\n"

    return StreamingHttpResponse(events(), content_type="text/event-stream")


urlpatterns = [path("thread", thread), path("stream", stream)]
