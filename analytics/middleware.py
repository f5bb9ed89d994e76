"""Per-request id and one JSON log line per request, also for streaming responses."""

import asyncio
import logging
import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from core.outages import is_database_outage
from core.request_id import accept_or_generate, set_request_id

from .metrics import HTTP_REQUESTS
from .request_metrics import requests_per_minute

logger = logging.getLogger("analytics.http")


class RequestLogMiddleware:
    """Take ``X-Request-ID`` (set by nginx) or make one; return it; log the request at its end.

    A streaming response is logged when its body ends (or the client goes away), so that
    ``duration_ms`` covers the whole stream.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        started, request_id = self._begin(request)
        response = self.get_response(request)
        return self._end(request, response, started, request_id)

    async def __acall__(self, request):
        started, request_id = self._begin(request)
        response = await self.get_response(request)
        return self._end(request, response, started, request_id)

    def _begin(self, request):
        request_id = accept_or_generate(request.headers.get("X-Request-ID"))
        set_request_id(request_id)
        request.request_id = request_id
        return time.monotonic(), request_id

    def _end(self, request, response, started, request_id):
        response["X-Request-ID"] = request_id
        if response.streaming and response.is_async:
            response.streaming_content = self._log_after(
                response.streaming_content, request, response.status_code, started, request_id
            )
        else:
            _log(
                request,
                response.status_code,
                started,
                request_id,
                streaming=response.streaming,
                # A draining replica's refusal (core/draining.py) is sent again, by nginx
                # or the client, to where it is served and counted: not a request, nor a 5xx.
                count=not getattr(response, "refused_before_work", False),
            )
        return response

    async def _log_after(self, content, request, status, started, request_id):
        try:
            async for chunk in content:
                yield chunk
        finally:
            _log(request, status, started, request_id, streaming=True)


_flushes: set[asyncio.Task] = set()


def _flush_request_counts(*, own_thread: bool) -> None:
    from django.db import connection

    try:
        requests_per_minute.flush()
    except Exception as exc:
        if is_database_outage(exc):  # kept for the next flush; the outage itself is logged once
            logger.debug("request counts kept for the next flush: the database is unavailable")
        else:
            logger.warning("could not store the request counts", exc_info=True)
    finally:
        requests_per_minute.flushing = False
        if own_thread:  # a worker thread: give its connection back to the pool
            connection.close()


def _count(status: int) -> None:
    HTTP_REQUESTS.labels(f"{status // 100}xx").inc()
    requests_per_minute.count(status)
    if not requests_per_minute.flush_due():
        return
    requests_per_minute.flushing = True
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # a sync server: flush in this thread
        _flush_request_counts(own_thread=False)
        return
    from asgiref.sync import sync_to_async

    flush = sync_to_async(_flush_request_counts, thread_sensitive=False)
    task = loop.create_task(flush(own_thread=True))
    _flushes.add(task)
    task.add_done_callback(_flushes.discard)


def _log(
    request, status: int, started: float, request_id: str, *, streaming: bool, count: bool = True
) -> None:
    if count:
        _count(status)
    logger.info(
        "http_request",
        extra={
            "event": "http_request",
            "method": request.method,
            "path": request.path,
            "status": status,
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
            "request_id": request_id,
            "streaming": streaming,
        },
    )
