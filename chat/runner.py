"""The generation runner: one asyncio task per reply, in the process that took the message.

It streams from the upstream, hands every delta to ``Generation.append`` (the in-process fan-out),
saves the partial text at a bounded rate from a side task, retries transient faults before any
text reached the user, and at the end stores the reply and exactly one AICall per attempt.
"""

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from aiproject import draining
from analytics import quotas
from analytics.services import CallRecord, record_call
from experiments.config import resolve_config

from . import services, streaming
from .llm import (
    IncompleteStream,
    UpstreamFault,
    cached_tokens_of,
    get_client,
    open_chat_stream,
    read_chunk,
    translate_fault,
)
from .models import Message
from .state import NOT_RETRYABLE, db
from .tokens import estimate_messages_tokens, estimate_text_tokens

logger = logging.getLogger(__name__)


def start(
    message_id: int,
    *,
    user_id: int,
    prepared: services.Prepared,
    request_id: str = "",
    session_key: str = "",
) -> streaming.Generation:
    """Register the reply in this process and start its runner task.

    Registration happens before the caller yields to the loop, so a stream opened right after
    the POST on this process always finds it.
    """
    generation = streaming.register(message_id, user_id, session_key)
    generation.task = streaming.outliving_task(
        run(generation, request_id=request_id, prepared=prepared)
    )
    return generation


async def shutdown(
    *, drain_seconds: float, grace_seconds: float, readers_seconds: float = 2.0
) -> int:
    """Let this process's replies end, then interrupt what is left; return how many were.

    Waits up to ``drain_seconds`` for every generation of the process to end on its own (those
    still being started by posts admitted before the drain began included), and stops waiting
    as soon as none is left or ``draining.hurry()`` is called (a second signal). What still
    runs then is cancelled, and each stores its end within ``grace_seconds``: the reply as
    ``interrupted``, the call with its usage so far, the quota reservation released. Last, the
    local readers of these replies get a moment to take their final event, which must reach
    the socket before the server closes it. Daphne calls this on a stop signal and again
    before it stops (aiproject.asgi).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + drain_seconds
    seen: dict[asyncio.Task, streaming.Generation] = {}

    def running() -> list[asyncio.Task]:
        # Rescanned on each pass: a post accepted just before the drain began may register
        # its reply after it began. A finished reply leaves the registry before its task ends
        # (it may still be naming the conversation), hence the tasks seen are kept.
        for generation in list(streaming._generations.values()):
            if generation.task is not None:
                seen.setdefault(generation.task, generation)
        return [task for task in seen if not task.done()]

    if drain_seconds > 0 and (tasks := running()):
        logger.info(
            "draining: %s reply(s) in progress, waiting up to %ss", len(tasks), drain_seconds
        )
    hurried = asyncio.ensure_future(draining.wait_hurried())
    try:
        while ((tasks := running()) or draining.work_starting()) and not draining.hurried():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await asyncio.wait(
                [*tasks, hurried], timeout=min(remaining, 0.1), return_when=asyncio.FIRST_COMPLETED
            )
    finally:
        hurried.cancel()
    tasks = running()
    if tasks:
        logger.warning("shutting down: interrupting %s generation(s)", len(tasks))
        for task in tasks:
            task.cancel()
        _, pending = await asyncio.wait(tasks, timeout=grace_seconds)
        if pending:
            logger.warning("%s generation(s) did not finish storing before shutdown", len(pending))
    elif seen:
        logger.info("drained: %s reply(s) finished", len(seen))
    # Up to ``readers_seconds``: a reader stuck on a slow network is cut, and resumes elsewhere.
    for _ in range(int(readers_seconds / 0.02)):
        if not any(generation._subscribers for generation in seen.values()):
            break
        await asyncio.sleep(0.02)
    return len(tasks)


@dataclass
class _Attempt:
    number: int
    started: float
    text_start: int
    started_at: datetime = field(default_factory=timezone.now)
    opened: bool = False
    ttft_ms: int | None = None
    input_tokens: int | None = None
    cached_input_tokens: int = 0
    output_tokens: int | None = None
    finish_reason: str | None = None


def _elapsed_ms(since: float) -> int:
    return int((time.monotonic() - since) * 1000)


def _backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return retry_after
    base = settings.AI_RETRY_BASE_DELAY_SECONDS * (2 ** (attempt - 1))
    return base * (0.5 + random.random() / 2)  # noqa: S311 (jitter, not security)


class _Runner:
    def __init__(self, generation: streaming.Generation, plan: services.ReplyPlan, request_id):
        self.generation = generation
        self.plan = plan
        self.request_id = request_id
        self.started = time.monotonic()
        self.attempt: _Attempt | None = None
        # Replaced on each retry and by a forced re-reservation; released at the end.
        self.reservation: quotas.Reservation | None = plan.reservation

    def _reserve_again(self, *, force: bool = False) -> None:
        """Hold a fresh worst case (before a retry, or after the old one expired).

        Runs in a worker thread and sets ``self.reservation`` there, so a stop arriving while it
        runs never loses the new reservation.
        """
        if self.reservation is not None:
            self.reservation.release()
        self.reservation = None
        self.reservation = services.reserve_reply(self.plan, force=force)

    def _record(self, attempt: _Attempt, *, status: str, error_code: str = "") -> CallRecord:
        text = self.generation.text[attempt.text_start :]
        input_tokens, output_tokens = attempt.input_tokens, attempt.output_tokens
        estimated = False
        if attempt.opened and (input_tokens is None or output_tokens is None):
            # No usage from the upstream (interrupted, or a server that never sends it): an
            # estimate is closer to the bill than zero.
            estimated = True
            input_tokens = estimate_messages_tokens(self.plan.messages)
            output_tokens = estimate_text_tokens(text)
        return CallRecord(
            task_type="chat",
            model=self.plan.config.model,
            base_url=settings.AI_BASE_URL,
            status=status,
            error_code=error_code,
            attempt=attempt.number,
            streamed=True,
            input_tokens=input_tokens or 0,
            cached_input_tokens=attempt.cached_input_tokens,
            output_tokens=output_tokens or 0,
            tokens_estimated=estimated,
            latency_ms=_elapsed_ms(attempt.started),
            started_at=attempt.started_at,
            ttft_ms=attempt.ttft_ms,
            variant=self.plan.config.variant,
            prompt_version_id=self.plan.config.prompt_version_id,
            request_id=self.request_id,
            user_id=self.plan.user_id,
            conversation_id=self.plan.conversation_id,
            message_id=self.plan.message_id,
        )

    async def stream_once(self, attempt: _Attempt) -> None:
        config = self.plan.config
        stream = await open_chat_stream(
            model=config.model,
            messages=self.plan.messages,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            include_usage=settings.AI_STREAM_USAGE,
        )
        attempt.opened = True
        try:
            async for data in stream:
                chunk = read_chunk(data)
                if chunk.usage is not None:
                    attempt.input_tokens = chunk.usage["prompt_tokens"]
                    attempt.output_tokens = chunk.usage["completion_tokens"]
                    attempt.cached_input_tokens = cached_tokens_of(chunk.usage)
                if chunk.content:
                    if attempt.ttft_ms is None:
                        attempt.ttft_ms = _elapsed_ms(attempt.started)
                    self.generation.append(chunk.content)
                if chunk.finish_reason:
                    attempt.finish_reason = chunk.finish_reason
        finally:
            await asyncio.shield(stream.close())
        if attempt.finish_reason is None and settings.AI_REQUIRE_FINISH_REASON:
            raise IncompleteStream

    async def run(self) -> tuple[str, UpstreamFault | None]:
        """Stream with retries; return the final status and the fault, if any."""
        for number in range(1, settings.AI_MAX_RETRIES + 2):
            attempt = self.attempt = _Attempt(number, time.monotonic(), self.generation.length)
            try:
                await self.stream_once(attempt)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every upstream fault becomes an UpstreamFault
                fault = translate_fault(exc, text_started=self.generation.length > 0)
                if fault.code == "internal_error":
                    logger.exception(
                        "unexpected error in the generation of %s", self.plan.message_id
                    )
            else:
                return Message.Status.COMPLETED, None
            delay = _backoff(number, fault.retry_after)
            last = (
                number > settings.AI_MAX_RETRIES
                or not fault.retryable
                or self.generation.length > 0
                or delay > settings.AI_RETRY_MAX_DELAY_SECONDS
            )
            if last:
                return Message.Status.FAILED, fault
            call = self._record(attempt, status=fault.call_status, error_code=fault.code)
            self.attempt = None  # recorded here; a stop from now on records nothing more
            try:
                # Shielded: a stop arriving meanwhile must not lose (or double) this record.
                await asyncio.shield(db(record_call, call))
            except Exception:
                logger.exception("could not record a failed attempt of %s", self.plan.message_id)
            if self.reservation is not None:
                # Each attempt is paid for: the next one must fit the quotas like the first.
                try:
                    await asyncio.shield(db(self._reserve_again))
                except quotas.QuotaExceeded as exc:
                    return Message.Status.FAILED, UpstreamFault(
                        code=exc.code, call_status="error", retryable=False, message=exc.message
                    )
            logger.info(
                "retrying upstream after %s (attempt %s, in %.2fs)", fault.code, number, delay
            )
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")


async def _keep_saving(generation: streaming.Generation, runner: "_Runner") -> None:
    """Save the partial text at a bounded rate; it is also the heartbeat and the stop check.

    It also keeps the quota reservation alive: a reservation that is not renewed expires, which
    is how the reservations of a dead process give their amounts back. One that expired anyway
    (renewals failed for a whole TTL) is taken again, limits ignored: the upstream is already
    streaming, and the counters must show it.
    """
    renewed = time.monotonic()
    while True:
        await asyncio.sleep(settings.CHAT_PERSIST_INTERVAL_SECONDS)
        reservation = runner.reservation
        if reservation is not None and (
            time.monotonic() - renewed > settings.QUOTA_RESERVATION_TTL_SECONDS / 3
        ):
            try:
                if not await db(reservation.renew):
                    logger.warning(
                        "quota reservation %s had expired; taking it again", reservation.id
                    )
                    await asyncio.shield(db(runner._reserve_again, force=True))
                renewed = time.monotonic()
            except Exception:
                logger.warning("could not renew the quota reservation", exc_info=True)
        try:
            stop = await db(services.save_progress, generation.message_id, generation.text)
        except Exception:
            logger.warning("could not save progress of %s", generation.message_id, exc_info=True)
            continue
        if stop:
            generation.request_stop()


async def run(
    generation: streaming.Generation,
    *,
    prepared: services.Prepared,
    request_id: str = "",
) -> None:
    """Generate one reply. ``prepared``: its start, made by the posting request's database
    call (services.prepare_reply)."""
    message_id = generation.message_id
    plan, error = prepared.plan, prepared.error
    if isinstance(error, quotas.QuotaExceeded):  # stored as failed with the limit's message
        _end_unstarted(generation, error.code, error.message)
        return
    if error is not None:
        logger.error("could not start the generation of %s", message_id, exc_info=error)
    if plan is None:
        # Never leave the reply pending: it would block its conversation until swept.
        try:
            await asyncio.shield(db(services.fail_unstarted_reply, message_id))
        except Exception:
            logger.exception("could not mark reply %s failed", message_id)
        _end_unstarted(generation, "internal_error", "The reply could not be started.")
        return

    runner = _Runner(generation, plan, request_id)
    saver = asyncio.create_task(_keep_saving(generation, runner))
    status, fault = Message.Status.CANCELLED, None
    interrupted = False  # the process is shutting down (see shutdown())
    try:
        if not generation.stop_requested:
            # From here on a stop request cancels the upstream stream at once.
            generation.cancellable = asyncio.create_task(runner.run())
            status, fault = await generation.cancellable
    except asyncio.CancelledError:
        # Stopped by request, or the process is shutting down (then the reply is interrupted).
        if generation.stop_requested:
            status = Message.Status.CANCELLED
        else:
            status, interrupted = Message.Status.INTERRUPTED, True
    except Exception as exc:  # a bug or a database fault: the reply fails, never "cancelled"
        logger.exception("the generation of %s failed", message_id)
        status, fault = Message.Status.FAILED, translate_fault(exc, text_started=False)
    generation.cancellable = None
    saver.cancel()
    # Both run to their end even if the process starts shutting down meanwhile: the calls are
    # recorded (and charged to the quotas) before the reservation is given back.
    _, cancelled = await through_cancel(_finish(generation, runner, status, fault))
    interrupted = interrupted or cancelled
    if runner.reservation is not None:
        _, cancelled = await through_cancel(_release(runner.reservation))
        interrupted = interrupted or cancelled
    if status == Message.Status.COMPLETED and plan.first_exchange and not interrupted:
        await _name_conversation(plan, request_id)


def _end_unstarted(generation: streaming.Generation, code: str, message: str) -> None:
    """End the streams of a reply that never started (the same fields a stream opened later
    reads from the stored reply)."""
    generation.finish(
        "error",
        {
            "message_id": generation.message_id,
            "status": Message.Status.FAILED,
            "code": code,
            "message": message,
            "retryable": code not in NOT_RETRYABLE,
        },
    )
    streaming.unregister(generation)


async def through_cancel(awaitable):
    """Await ``awaitable`` to its end even if this task is cancelled meanwhile.

    Return ``(result, cancelled)``; the caller ends what it does when ``cancelled`` is true (a
    cancel here is the process shutting down or a stop, and the work must not be cut in half).
    """
    task = asyncio.ensure_future(awaitable)
    cancelled = False
    while True:
        try:
            return await asyncio.shield(task), cancelled
        except asyncio.CancelledError:
            if task.done():
                raise  # the awaited work itself was cancelled
            cancelled = True


async def _finish(generation, runner: _Runner, status: str, fault: UpstreamFault | None) -> None:
    plan, attempt = runner.plan, runner.attempt
    call = None
    if attempt is not None:
        call_status = {
            Message.Status.COMPLETED: "ok",
            Message.Status.CANCELLED: "cancelled",
            Message.Status.INTERRUPTED: "error",
        }.get(status, fault.call_status if fault else "error")
        error_code = fault.code if fault else ("interrupted" if status == "interrupted" else "")
        call = runner._record(attempt, status=call_status, error_code=error_code)
    error_message = ""
    if fault is not None:
        error_message = fault.message
    elif status == Message.Status.INTERRUPTED:
        error_message = "The server stopped while writing this reply. Please retry."
    text = generation.text
    stored, closing = False, None
    try:
        closing = await db(
            services.finish_reply,
            plan.message_id,
            status=status,
            text=text,
            model=plan.config.model,
            input_tokens=call.input_tokens if call else None,
            output_tokens=call.output_tokens if call else None,
            tokens_estimated=call.tokens_estimated if call else False,
            latency_ms=_elapsed_ms(runner.started),
            ttft_ms=_first_ttft(runner),
            error_code=(
                fault.code if fault else ("interrupted" if status == "interrupted" else "")
            ),
            error_message=error_message,
            call=call,
        )
        stored = True
    except Exception:
        logger.exception("could not store the end of reply %s", plan.message_id)
        if call is not None:  # the call happened (and may be billed): keep its record anyway
            try:
                await db(record_call, call)
            except Exception:
                logger.exception("could not record the call of reply %s", plan.message_id)
    if closing is not None:
        event, data = closing
    elif stored:  # the conversation was deleted while the reply streamed
        event, data = (
            "error",
            {
                "message_id": plan.message_id,
                "status": status,
                "code": "not_found",
                "message": "The conversation was deleted.",
                "retryable": False,
            },
        )
    else:
        event, data = (
            "error",
            {
                "message_id": plan.message_id,
                "status": status,
                "code": "internal_error",
                "message": "The reply could not be stored.",
                "retryable": True,
            },
        )
    generation.finish(event, data)
    streaming.unregister(generation)
    await generation.wait_published()


async def _release(reservation: quotas.Reservation) -> None:
    try:
        await db(reservation.release)
    except Exception:  # it expires on its own
        logger.exception("could not release quota reservation %s", reservation.id)


def _first_ttft(runner: _Runner) -> int | None:
    # Time to first token as the user saw it: from the runner's start, retries included.
    attempt = runner.attempt
    if attempt is None or attempt.ttft_ms is None:
        return None
    return int((attempt.started - runner.started) * 1000) + attempt.ttft_ms


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


async def _name_conversation(plan: services.ReplyPlan, request_id: str) -> None:
    """Ask the model for a short title (task type ``title``); the first words stay on failure."""
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
            await through_cancel(_release(reservation))


async def _title_call(plan, request_id, config, messages, fallback) -> None:
    started, started_at = time.monotonic(), timezone.now()
    status, error_code, title = "ok", "", ""
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
        streamed=False,
        input_tokens=input_tokens or 0,
        cached_input_tokens=cached,
        output_tokens=output_tokens or 0,
        tokens_estimated=estimated,
        latency_ms=_elapsed_ms(started),
        started_at=started_at,
        variant=config.variant,
        request_id=request_id,
        user_id=plan.user_id,
        conversation_id=plan.conversation_id,
    )
    try:
        await through_cancel(db(record_call, call))
        if title and not cancelled:
            await db(
                services.set_generated_title, plan.conversation_id, title=title, fallback=fallback
            )
    except Exception:
        logger.warning(
            "could not store the title of conversation %s", plan.conversation_id, exc_info=True
        )
