"""The one path of an upstream call: reserve the quota, call, record one AICall per attempt,
release the reservation.

``complete`` is the whole path for a call that is not streamed (a conversation's title, an
evaluation's answers and judgements). The streamed reply (``chat.runner``) keeps its own loop, as
it fans deltas out while they arrive, and shares the pieces: ``usage_of`` (the estimate when the
upstream sends no usage), ``attempt_record``, ``next_retry`` and ``release``; faults are
translated by the LLM client's ``translate_fault`` for both.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from analytics import quotas
from analytics.services import CallRecord, record_call
from core.db_thread import db, through_cancel
from core.llm import (
    UpstreamFault,
    cached_tokens_of,
    get_client,
    retry_delay,
    strip_nul,
    translate_fault,
)
from core.task_types import TaskType
from core.tokens import estimate_messages_tokens, estimate_text_tokens

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    estimated: bool = False


def usage_of(
    *,
    messages: list[dict],
    text: str,
    input_tokens: int | None,
    output_tokens: int | None,
    cached_input_tokens: int = 0,
    sent: bool,
) -> Usage:
    """An attempt's usage as the upstream reported it; estimated when a request that went out
    (``sent``) got none back (interrupted, or a server that never sends it): an estimate is
    closer to the bill than zero."""
    if sent and (input_tokens is None or output_tokens is None):
        return Usage(
            estimate_messages_tokens(messages),
            estimate_text_tokens(text),
            cached_input_tokens,
            estimated=True,
        )
    return Usage(input_tokens or 0, output_tokens or 0, cached_input_tokens)


def attempt_record(
    *,
    task_type: TaskType,
    model: str,
    status: str,
    error_code: str = "",
    attempt: int,
    streamed: bool,
    usage: Usage,
    started: float,
    started_at: datetime,
    **about,
) -> CallRecord:
    """The AICall record of one upstream attempt begun at ``started`` (monotonic) and
    ``started_at``. ``about``: ttft_ms, variant, prompt_version_id, request_id and the ids."""
    return CallRecord(
        task_type=task_type,
        model=model,
        base_url=settings.AI_BASE_URL,
        status=status,
        error_code=error_code,
        attempt=attempt,
        streamed=streamed,
        input_tokens=usage.input_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        output_tokens=usage.output_tokens,
        tokens_estimated=usage.estimated,
        latency_ms=int((time.monotonic() - started) * 1000),
        started_at=started_at,
        **about,
    )


def next_retry(number: int, fault: UpstreamFault, *, retries: int) -> float | None:
    """The back-off before retrying failed attempt ``number`` (1-based), or None when it was the
    last: the fault is not transient, ``retries`` are used up, or the upstream asks for a longer
    wait than ``AI_RETRY_MAX_DELAY_SECONDS``."""
    if not fault.retryable or number > retries:
        return None
    delay = retry_delay(number, fault.retry_after)
    return None if delay > settings.AI_RETRY_MAX_DELAY_SECONDS else delay


async def release(reservation: quotas.Reservation) -> None:
    """Give a quota reservation back (after the calls it covered are recorded and charged)."""
    try:
        await db(reservation.release)
    except Exception:  # it expires on its own
        logger.exception("could not release quota reservation %s", reservation.id)


def reserve(
    *,
    user_id: int | None,
    model: str,
    messages: list[dict],
    max_tokens: int,
    stage: str,
    limits: quotas.Limits | None = None,
) -> quotas.Reservation | None:
    """Hold a call's worst case (QuotaExceeded, recorded as refused at ``stage``, if it does not
    fit). ``user_id`` None: only the global daily cap applies (evaluation runs)."""
    if user_id is None:
        user = None
    elif limits is not None:
        # With the limits in hand only the user's id is read: no query for the row.
        user = get_user_model()(pk=user_id)
    else:
        user = get_user_model().objects.get(pk=user_id)
    try:
        return quotas.reserve(
            user,
            model=model,
            input_tokens=estimate_messages_tokens(messages),
            max_tokens=max_tokens,
            limits=limits,
        )
    except quotas.QuotaExceeded as exc:
        quotas.record_refusal(exc, user_id=user_id, stage=stage)
        raise


@dataclass(frozen=True, slots=True)
class Completion:
    """What a call answered: ``text`` if it succeeded, else the last attempt's ``fault``, or the
    quota's refusal (nothing was sent), or ``cancelled`` (the process is shutting down)."""

    text: str = ""
    fault: UpstreamFault | None = None
    refused: quotas.QuotaExceeded | None = None
    cancelled: bool = False
    attempts: int = 0

    @property
    def error_code(self) -> str:
        if self.refused is not None:
            return self.refused.code
        if self.fault is not None:
            return self.fault.code
        return "interrupted" if self.cancelled else ""


async def _store(call: CallRecord) -> None:
    await db(record_call, call)


async def complete(
    *,
    task_type: TaskType,
    model: str,
    messages: list[dict],
    temperature: float | None,
    max_tokens: int,
    refusal_stage: str,
    user_id: int | None = None,
    limits: quotas.Limits | None = None,
    variant: str = "",
    version_id: int | None = None,
    request_id: str = "",
    conversation_id: int | None = None,
    retries: int = 0,
    record: Callable[[CallRecord], Awaitable[object]] = _store,
) -> Completion:
    """Make one non-streamed chat completion: reserve its worst case, call with up to ``retries``
    retries of transient faults (each attempt recorded as its own AICall through ``record``),
    then release the reservation once every record is stored (and charged).

    A refusal of the quotas sends nothing and records a refusal at ``refusal_stage``. A cancel
    (shutdown) during an attempt records it as cancelled with its estimated usage and returns
    ``cancelled``; the records and the release still run to their end.
    """
    try:
        reservation = await db(
            reserve,
            user_id=user_id,
            model=model,
            messages=messages,
            max_tokens=max_tokens,
            stage=refusal_stage,
            limits=limits,
        )
    except quotas.QuotaExceeded as exc:
        return Completion(refused=exc)
    records: list[asyncio.Future] = []
    try:
        for number in range(1, retries + 2):
            text, fault, cancelled, call = await _attempt(
                number,
                task_type=task_type,
                model=model,
                messages=messages,
                temperature=temperature,
                max_tokens=max_tokens,
                variant=variant,
                prompt_version_id=version_id,
                request_id=request_id,
                user_id=user_id,
                conversation_id=conversation_id,
            )
            # Recorded while the back-off runs, not before it (it starts from the fault).
            records.append(asyncio.ensure_future(record(call)))
            delay = None if fault is None else next_retry(number, fault, retries=retries)
            if fault is None or cancelled or delay is None:
                return Completion(text, fault, cancelled=cancelled, attempts=number)
            logger.info("retrying the %s call after %s (attempt %s)", task_type, fault.code, number)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")
    finally:
        # The calls are recorded (and charged) before the reservation is given back.
        if records:
            await through_cancel(asyncio.gather(*records, return_exceptions=True))
        if reservation is not None:
            await through_cancel(release(reservation))


async def _attempt(
    number: int, *, task_type, model, messages, temperature, max_tokens, **about
) -> tuple[str, UpstreamFault | None, bool, CallRecord]:
    """One upstream attempt: return its text, fault, whether it was cancelled, and its record."""
    started, started_at = time.monotonic(), timezone.now()
    status, error_code, text, fault, cancelled = "ok", "", "", None, False
    input_tokens = output_tokens = None
    cached = 0
    try:
        response = await get_client().chat.completions.create(
            model=model,
            messages=messages,
            temperature=temperature,
            max_tokens=max_tokens,
            timeout=settings.AI_REQUEST_TIMEOUT_SECONDS,
        )
        text = strip_nul((response.choices[0].message.content or "") if response.choices else "")
        if response.usage is not None:
            input_tokens = response.usage.prompt_tokens
            output_tokens = response.usage.completion_tokens
            cached = cached_tokens_of(response.usage)
    except asyncio.CancelledError:
        # Shutting down: the request was sent and may be billed; record what it likely used.
        cancelled = True
        status, error_code = "cancelled", "interrupted"
    except Exception as exc:
        fault = translate_fault(exc, text_started=False)
        status, error_code = fault.call_status, fault.code
    usage = usage_of(
        messages=messages,
        text=text,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=cached,
        sent=status == "ok" or cancelled,
    )
    call = attempt_record(
        task_type=task_type,
        model=model,
        status=status,
        error_code=error_code,
        attempt=number,
        streamed=False,
        usage=usage,
        started=started,
        started_at=started_at,
        **about,
    )
    return text, fault, cancelled, call
