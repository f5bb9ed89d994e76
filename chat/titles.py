"""The title call after a conversation's first exchange (task type ``title``).

Transient faults are retried like a reply's attempts (``AI_MAX_RETRIES``, the same back-off),
each attempt recorded as its own AICall; the first words of the message stay the title if every
attempt fails.
"""

import asyncio
import logging
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from analytics import quotas
from analytics.services import CallRecord
from core.db_thread import db
from core.llm import cached_tokens_of, get_client, retry_delay, strip_nul, translate_fault
from core.tokens import estimate_messages_tokens, estimate_text_tokens
from experiments.config import resolve_config

from . import finishing, services
from .finishing import through_cancel

logger = logging.getLogger(__name__)


def _start_title(user_id: int, text: str, limits: quotas.Limits | None = None):
    """Return the title call's config, messages and quota reservation (QuotaExceeded: skip).

    ``limits``: the user's, as the reply was admitted with."""
    user = get_user_model().objects.get(pk=user_id)
    config = resolve_config(user, "title")
    messages = [
        {"role": "system", "content": config.system_prompt},
        {"role": "user", "content": text[:2000]},
    ]
    try:
        reservation = quotas.check(
            user,
            model=config.model,
            input_tokens=estimate_messages_tokens(messages),
            max_tokens=config.max_tokens,
            reserve=True,
            limits=limits,
        )
    except quotas.QuotaExceeded as exc:
        quotas.record_refusal(exc, user_id=user_id, stage="title")
        raise
    return config, messages, reservation


async def name_conversation(plan: services.ReplyPlan, request_id: str, release) -> None:
    """Ask the model for a short title; the first words stay on failure.

    ``release``: an async function giving a quota reservation back (the runner's).
    """
    fallback = services.fallback_title(plan.first_user_text)
    try:
        config, messages, reservation = await db(
            _start_title, plan.user_id, plan.first_user_text, plan.limits
        )
    except quotas.QuotaExceeded:
        return  # the first words stay the title
    except Exception:
        logger.warning("could not start the title of %s", plan.conversation_id, exc_info=True)
        return
    try:
        await _title_call(plan, request_id, config, messages, fallback)
    finally:
        if reservation is not None:
            await through_cancel(release(reservation))


async def _title_call(plan, request_id, config, messages, fallback) -> None:
    records: list[asyncio.Future] = []
    title, cancelled = "", False
    try:
        for number in range(1, settings.AI_MAX_RETRIES + 2):
            call, title, fault, cancelled = await _title_attempt(
                plan, request_id, config, messages, number
            )
            delay = retry_delay(number, fault.retry_after) if fault else 0.0
            last = (
                fault is None
                or cancelled
                or not fault.retryable
                or number > settings.AI_MAX_RETRIES
                or delay > settings.AI_RETRY_MAX_DELAY_SECONDS
            )
            # Recorded while the back-off runs, not before it (it starts from the fault).
            records.append(asyncio.ensure_future(finishing.record_attempt(call)))
            if last:
                break
            logger.info("retrying the title after %s (attempt %s)", fault.code, number)
            await asyncio.sleep(delay)
    finally:
        # The calls are recorded (and charged) before the reservation is given back.
        if records:
            await through_cancel(asyncio.gather(*records, return_exceptions=True))
    if title and not cancelled:
        try:
            await db(
                services.set_generated_title, plan.conversation_id, title=title, fallback=fallback
            )
        except Exception:
            logger.warning(
                "could not store the title of conversation %s", plan.conversation_id, exc_info=True
            )


async def _title_attempt(plan, request_id, config, messages, number: int):
    """One upstream attempt: return its call record, the title, the fault and whether the
    process is shutting down (the attempt was cancelled)."""
    started, started_at = time.monotonic(), timezone.now()
    status, error_code, title, fault = "ok", "", "", None
    input_tokens = output_tokens = None
    cached = 0
    cancelled = False
    try:
        response = await get_client().chat.completions.create(
            model=config.model,
            messages=messages,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            timeout=settings.AI_REQUEST_TIMEOUT_SECONDS,
        )
        title = (response.choices[0].message.content or "") if response.choices else ""
        title = strip_nul(title)
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
    estimated = (status == "ok" or cancelled) and input_tokens is None
    if estimated:
        input_tokens = estimate_messages_tokens(messages)
        output_tokens = estimate_text_tokens(title)
    call = CallRecord(
        task_type="title",
        model=config.model,
        base_url=settings.AI_BASE_URL,
        status=status,
        error_code=error_code,
        attempt=number,
        streamed=False,
        input_tokens=input_tokens or 0,
        cached_input_tokens=cached,
        output_tokens=output_tokens or 0,
        tokens_estimated=estimated,
        latency_ms=int((time.monotonic() - started) * 1000),
        started_at=started_at,
        variant=config.variant,
        request_id=request_id,
        user_id=plan.user_id,
        conversation_id=plan.conversation_id,
    )
    return call, title, fault, cancelled
