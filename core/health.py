"""``/healthz`` (the process is alive), ``/readyz`` (it is not draining, and its database and
Redis answer) and ``/metrics`` (Prometheus, behind a bearer token).

Answered by a middleware ahead of everything else, so that a container health check, a load
balancer probe or a Prometheus scrape works whatever Host header it sends and never follows an
HTTPS redirect. The same middleware turns a view's failure to reach the database into a 503
(``core.outages``) rather than a 500.
"""

import asyncio
import hmac
import time
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse

from core import draining

from .errors import error_json
from .outages import REDIS, outage_response
from .redis_clients import async_redis_client

CHECK_TIMEOUT_SECONDS = 3.0


def _check_database() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()


async def _ping(url: str) -> None:
    client = async_redis_client(
        url, socket_connect_timeout=CHECK_TIMEOUT_SECONDS, socket_timeout=CHECK_TIMEOUT_SECONDS
    )
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _check_redis() -> None:
    """REDIS_URL, every instance of the channel layer (CHANNEL_REDIS_URLS) and the quota
    counters' Redis (QUOTA_REDIS_URL, a Cluster too) answer."""
    urls = dict.fromkeys([settings.REDIS_URL, *settings.CHANNEL_REDIS_URLS])
    if settings.QUOTA_BACKEND == "redis" and settings.QUOTA_REDIS_URL:
        urls[settings.QUOTA_REDIS_URL] = None
    try:
        await asyncio.gather(*(_ping(url) for url in urls))
    except Exception as exc:
        REDIS.failed(exc)  # logged once per outage; /metrics shows it
        raise
    REDIS.recovered()


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
            if draining.is_draining():
                # Stopping: take this process out of rotation, whatever its dependencies say.
                return draining.expected(JsonResponse({"status": "draining"}, status=503))
            ok, checks = await readiness()
            failing = [name for name, result in checks.items() if not result["ok"]]
            body: dict[str, Any] = {"status": "ok" if ok else "unavailable", "checks": checks}
            if failing:
                body["failing"] = failing
            response = JsonResponse(body, status=200 if ok else 503)
            # Probed every few seconds: the outage is logged once (core.outages), not as
            # an ERROR line per probe.
            response._has_been_logged = True  # type: ignore[attr-defined]  # see core.outages
            return response
        if request.path == "/metrics":
            return metrics_response(request)
        return await self.get_response(request)

    def process_exception(self, request, exception):
        """A page or view that could not reach the database or Redis: 503 with Retry-After,
        not 500."""
        return outage_response(request, exception)


def metrics_response(request) -> HttpResponse:
    """The Prometheus text format; 404 while METRICS_TOKEN is unset, 401 for a wrong token."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    from core.metrics import REGISTRY

    token = settings.METRICS_TOKEN
    if not token:
        return error_json(404, {"code": "not_found", "message": "Not found."})
    presented = request.headers.get("Authorization", "")
    if not hmac.compare_digest(presented.encode(), f"Bearer {token}".encode()):
        response = error_json(
            401, {"code": "unauthorized", "message": "A valid bearer token is required."}
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
