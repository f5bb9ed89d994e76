"""``/healthz`` (the process is alive) and ``/readyz`` (its database and Redis answer).

Answered by a middleware ahead of everything else, so that a container health check or a load
balancer probe works whatever Host header it sends and never follows an HTTPS redirect.
"""

import asyncio
import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.db import connection
from django.http import JsonResponse

CHECK_TIMEOUT_SECONDS = 3.0


def _check_database() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()


async def _check_redis() -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
        socket_timeout=CHECK_TIMEOUT_SECONDS,
    )
    try:
        await client.ping()
    finally:
        await client.aclose()


async def readiness() -> tuple[bool, dict]:
    """Return whether every dependency answers, and each one's state."""
    checks = {"database": sync_to_async(_check_database, thread_sensitive=False)()}
    if settings.REDIS_URL:
        checks["redis"] = _check_redis()
    results: dict[str, dict] = {}
    for name, check in checks.items():
        started = time.monotonic()
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                await check
        except Exception as exc:  # the failing part is named, its details are not exposed
            results[name] = {"ok": False, "error": type(exc).__name__}
        else:
            results[name] = {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1)}
    return all(r["ok"] for r in results.values()), results


class HealthCheckMiddleware:
    sync_capable = False
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    async def __call__(self, request):
        if request.path == "/healthz":
            return JsonResponse({"status": "ok"})
        if request.path == "/readyz":
            ok, checks = await readiness()
            failing = [name for name, result in checks.items() if not result["ok"]]
            body = {"status": "ok" if ok else "unavailable", "checks": checks}
            if failing:
                body["failing"] = failing
            return JsonResponse(body, status=200 if ok else 503)
        return await self.get_response(request)
