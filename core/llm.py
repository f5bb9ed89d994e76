"""The upstream client (official ``openai`` SDK) and the translation of its faults.

Upstream error bodies and the API key never leave this module: callers get an ``UpstreamFault``
with a code and a message written for the user.
"""

import asyncio
import email.utils
import json
import random
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
import httpx2
import openai
import pydantic
from django.conf import settings

from .errors import AppError

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, openai.AsyncOpenAI]" = (
    weakref.WeakKeyDictionary()
)


def get_client() -> openai.AsyncOpenAI:
    """Return this event loop's client (its connection pool belongs to the loop)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = openai.AsyncOpenAI(
            api_key=settings.AI_API_KEY,
            base_url=settings.AI_BASE_URL,
            # Each attempt is retried (and recorded) by the runner, not hidden inside the SDK.
            max_retries=0,
            timeout=httpx2.Timeout(
                connect=settings.AI_CONNECT_TIMEOUT_SECONDS,
                # Between two chunks of a stream: a longer silence is a stall.
                read=settings.AI_STREAM_IDLE_TIMEOUT_SECONDS,
                write=10.0,
                pool=10.0,
            ),
            http_client=(
                openai.DefaultAioHttpClient()
                if settings.AI_HTTP_CLIENT == "aiohttp"
                else openai.DefaultAsyncHttpxClient()
            ),
        )
        _clients[loop] = client
    return client


@dataclass(frozen=True, slots=True)
class UpstreamFault(AppError):
    """An upstream failure, translated: ``code`` for clients, ``call_status`` for AICall."""

    status = 502  # not a dataclass field: the answer's status if one is ever made of it

    # field(): no default, although AppError's class attributes of the same names have one.
    code: str = field()
    call_status: str = field()
    retryable: bool = field()
    message: str = field()
    retry_after: float | None = None
    http_status: int | None = None

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def _field(obj, name: str):
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def cached_tokens_of(usage) -> int:
    """Return the prompt tokens served from the upstream's cache (OpenAI's or DeepSeek's field).

    ``usage`` is the SDK's model or, for a streamed chunk, the plain JSON object.
    """
    details = _field(usage, "prompt_tokens_details")
    cached = _field(details, "cached_tokens") if details is not None else None
    if cached is None:
        cached = _field(usage, "prompt_cache_hit_tokens")  # DeepSeek
    return cached if isinstance(cached, int) and cached > 0 else 0


class IncompleteStream(Exception):
    """The stream ended without a finish reason."""


class MalformedChunk(Exception):
    """A streamed chunk is JSON but not shaped like a chat completion chunk."""


async def open_chat_stream(
    *,
    model: str,
    messages: list[dict],
    temperature: float | None,
    max_tokens: int | None,
    include_usage: bool,
) -> "openai.AsyncStream[object]":
    """Start a streamed chat completion whose chunks arrive as plain JSON objects.

    This is the SDK's own request path (``AsyncOpenAI.post``: auth, timeouts, status errors,
    SSE decoding, error events and ``[DONE]``), the one ``chat.completions.create`` uses, with
    ``cast_to=object``: the typed method builds a pydantic model for every chunk, which cost
    about 140 µs of CPU per token on the benchmark machine (190 µs against 50 µs per chunk,
    read and parsed), the largest single cost of a streamed reply (docs/performance.md).
    Read the chunks with ``read_chunk``.
    """
    body: dict = {"model": model, "messages": messages, "stream": True}
    if temperature is not None:
        body["temperature"] = temperature
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    return await get_client().post(
        "/chat/completions",
        body=body,
        cast_to=object,
        stream=True,
        stream_cls=openai.AsyncStream[object],
    )


@dataclass(frozen=True, slots=True)
class Chunk:
    """What the runner uses of one streamed chunk (choice 0 only)."""

    content: str
    finish_reason: str | None
    usage: dict | None


def read_chunk(data: object) -> Chunk:
    """Check and read one chunk of a chat completion stream (MalformedChunk if it is not one)."""
    if not isinstance(data, dict):
        raise MalformedChunk("a chunk is not a JSON object")
    choices = data.get("choices") or []
    usage = data.get("usage")
    if not isinstance(choices, list) or not (usage is None or isinstance(usage, dict)):
        raise MalformedChunk("a chunk's choices or usage have the wrong type")
    content, finish_reason = "", None
    for choice in choices:
        if not isinstance(choice, dict):
            raise MalformedChunk("a choice is not a JSON object")
        if choice.get("index", 0) != 0:
            continue
        delta = choice.get("delta") or {}
        if not isinstance(delta, dict):
            raise MalformedChunk("a delta is not a JSON object")
        text = delta.get("content")
        reason = choice.get("finish_reason")
        if not (text is None or isinstance(text, str)) or not (
            reason is None or isinstance(reason, str)
        ):
            raise MalformedChunk("a delta's content or finish reason is not a string")
        content += text or ""
        finish_reason = reason or finish_reason
    if usage is not None and not all(
        isinstance(usage.get(key), int) for key in ("prompt_tokens", "completion_tokens")
    ):
        # Some compatible servers send nulls here: unknown usage, estimated like a missing one
        # (as the SDK's unvalidated models let through), not a failed reply.
        usage = None
    return Chunk(content, finish_reason, usage)


def _retry_after(response: httpx2.Response | None) -> float | None:
    if response is None:
        return None
    headers = response.headers
    if value := headers.get("retry-after-ms"):
        try:
            return max(float(value) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _connection_failure(exc: BaseException) -> bool:
    """True when a failed connection (refused, reset, closed) caused ``exc``.

    The SDK's aiohttp transport (AI_HTTP_CLIENT=aiohttp) maps every aiohttp connection error to
    a connect *timeout*, so a refused connection would read as "did not answer in time"; the
    original error is still on the exception's chain.
    """
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, aiohttp.ClientConnectionError) and not isinstance(seen, TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def retry_delay(attempt: int, retry_after: float | None) -> float:
    """The back-off before retrying after failed attempt ``attempt`` (1-based): the upstream's
    ``Retry-After`` if it sent one, else exponential from ``AI_RETRY_BASE_DELAY_SECONDS`` with
    jitter."""
    if retry_after is not None:
        return retry_after
    base = settings.AI_RETRY_BASE_DELAY_SECONDS * (2 ** (attempt - 1))
    return base * (0.5 + random.random() / 2)  # noqa: S311 (jitter, not security)


def strip_nul(text: str) -> str:
    """Drop NUL characters from model output: PostgreSQL cannot store them in text, so a reply
    with one would stream but never be saved. Streamed text and stored text stay equal."""
    return text.replace("\x00", "") if "\x00" in text else text


def translate_fault(exc: BaseException, *, text_started: bool) -> UpstreamFault:
    """Return the user-facing fault for an exception raised by the SDK or the stream."""
    if isinstance(exc, UpstreamFault):
        return exc
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return UpstreamFault(
            "upstream_auth",
            "error",
            retryable=False,
            message="The AI service refused this server's credentials. "
            "An administrator needs to check the API key.",
            http_status=exc.status_code,
        )
    if isinstance(exc, openai.RateLimitError):
        return UpstreamFault(
            "upstream_rate_limited",
            "rate_limited",
            retryable=True,
            message="The AI service is busy (rate limited). Please try again in a moment.",
            retry_after=_retry_after(exc.response),
            http_status=429,
        )
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500 or exc.status_code in (408, 409):
            return UpstreamFault(
                "upstream_unavailable",
                "error",
                retryable=True,
                message="The AI service is unavailable right now. Please try again.",
                retry_after=_retry_after(exc.response),
                http_status=exc.status_code,
            )
        return UpstreamFault(
            "upstream_rejected",
            "error",
            retryable=False,
            message=f"The AI service rejected the request (HTTP {exc.status_code}).",
            http_status=exc.status_code,
        )
    if isinstance(
        exc, openai.APITimeoutError | TimeoutError | httpx2.TimeoutException
    ) and not _connection_failure(exc):
        if text_started:
            return UpstreamFault(
                "upstream_stalled",
                "timeout",
                retryable=True,
                message="The AI service stopped sending the reply. The partial reply was kept.",
            )
        return UpstreamFault(
            "upstream_timeout",
            "timeout",
            retryable=True,
            message="The AI service did not answer in time. Please try again.",
        )
    if isinstance(exc, openai.APIConnectionError | httpx2.TransportError) or _connection_failure(
        exc
    ):
        return UpstreamFault(
            "upstream_connection",
            "error",
            retryable=True,
            message="The connection to the AI service was lost. Please try again.",
        )
    if isinstance(exc, IncompleteStream):
        return UpstreamFault(
            "upstream_incomplete",
            "error",
            retryable=True,
            message="The AI service ended the reply before it was complete.",
        )
    if isinstance(
        exc,
        json.JSONDecodeError
        | MalformedChunk
        | pydantic.ValidationError
        | openai.APIResponseValidationError,
    ):
        return UpstreamFault(
            "upstream_malformed",
            "error",
            retryable=True,
            message="The AI service sent a reply this server could not read.",
        )
    if isinstance(exc, openai.APIError):
        return UpstreamFault(
            "upstream_error",
            "error",
            retryable=True,
            message="The AI service reported an error while answering.",
        )
    return UpstreamFault(
        "internal_error",
        "error",
        retryable=True,
        message="Something went wrong on this server while generating the reply.",
    )
