"""The generation runner: one asyncio task per reply, in the process that took the message.

It streams from the upstream, hands every delta to ``Generation.append`` (the in-process fan-out),
saves the partial text at a bounded rate from a side task, retries transient faults before any
text reached the user, and at the end stores the reply and exactly one AICall per attempt.
"""

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from analytics import quotas
from analytics.services import CallRecord, record_call_once
from core import draining
from core.db_thread import db
from core.llm import (
    IncompleteStream,
    UpstreamFault,
    cached_tokens_of,
    open_chat_stream,
    read_chunk,
    retry_delay,
    strip_nul,
    translate_fault,
)
from core.tokens import estimate_messages_tokens, estimate_text_tokens

from . import finishing, lifecycle, services, streaming, titles
from .finishing import through_cancel
from .models import Message
from .state import closing_event

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
    # Ends still being retried (the database away): one last try each, then logged and counted.
    await flush_pending_finishes(grace_seconds)
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


class _Runner:
    def __init__(self, generation: streaming.Generation, plan: services.ReplyPlan, request_id):
        self.generation = generation
        self.plan = plan
        self.request_id = request_id
        self.started = time.monotonic()
        self.attempt: _Attempt | None = None
        # Replaced on each retry and by a forced re-reservation; released at the end.
        self.reservation: quotas.Reservation | None = plan.reservation
        # Database work started during a back-off (the failed attempts' records, the next
        # reservation), awaited before the reservation is given back (settle()).
        self.writes: list[asyncio.Future] = []
        self.reserving: asyncio.Future | None = None

    async def settle(self) -> None:
        """Wait for the records and the reservation started during back-offs."""
        pending = [*self.writes, *([self.reserving] if self.reserving else [])]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

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
                content = strip_nul(chunk.content) if chunk.content else ""
                if content:
                    if attempt.ttft_ms is None:
                        attempt.ttft_ms = _elapsed_ms(attempt.started)
                    self.generation.append(content)
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
            delay = retry_delay(number, fault.retry_after)
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
            # The back-off starts from the fault: the record and the next reservation go to the
            # database while it runs, not before it (under load the database thread is busy,
            # and the retry waited for it). Both are tasks of their own: a stop arriving
            # meanwhile neither loses nor doubles them (settle() awaits them).
            self.writes.append(asyncio.ensure_future(finishing.record_attempt(call)))
            reserving = None
            if self.reservation is not None:
                # Each attempt is paid for: the next one must fit the quotas like the first.
                reserving = self.reserving = asyncio.ensure_future(db(self._reserve_again))
            logger.info(
                "retrying upstream after %s (attempt %s, in %.2fs)", fault.code, number, delay
            )
            await asyncio.sleep(delay)
            if reserving is not None:
                try:
                    await asyncio.shield(reserving)
                except quotas.QuotaExceeded as exc:
                    return Message.Status.FAILED, UpstreamFault(
                        code=exc.code, call_status="error", retryable=False, message=exc.message
                    )
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
        await through_cancel(_fail_unstarted(generation))
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
    # All run to their end even if the process starts shutting down meanwhile: the calls are
    # recorded (and charged to the quotas) before the reservation is given back.
    stored, cancelled = await through_cancel(_finish(generation, runner, status, fault))
    interrupted = interrupted or cancelled
    _, cancelled = await through_cancel(runner.settle())
    interrupted = interrupted or cancelled
    if runner.reservation is not None:
        _, cancelled = await through_cancel(_release(runner.reservation))
        interrupted = interrupted or cancelled
    if stored == Message.Status.COMPLETED and plan.first_exchange and not interrupted:
        await titles.name_conversation(plan, request_id, _release)


async def flush_pending_finishes(grace_seconds: float) -> int:
    """For a process about to exit (after ``shutdown()``): try every final write and call record
    still being retried at once, and give up those still failing after ``grace_seconds``, each
    logged at ERROR with its whole record and counted (``aiproject_chat_final_writes_lost``).
    Return how many were not stored."""
    return await finishing.flush_pending_writes(grace_seconds)


def _end_unstarted(generation: streaming.Generation, code: str, message: str) -> None:
    """End the streams of a reply that never started (the same fields a stream opened later
    reads from the stored reply)."""
    generation.finish(
        *closing_event(
            generation.message_id,
            {"status": Message.Status.FAILED, "error_code": code, "error_message": message},
        )
    )
    streaming.unregister(generation)


async def _fail_unstarted(generation: streaming.Generation) -> None:
    """Store a reply that could not start as failed, and end its streams with what is stored."""
    message_id = generation.message_id

    def from_memory():  # what will be stored, while the write is retried
        generation.finish(*closing_event(message_id, lifecycle.UNSTARTED))

    _, closing = await finishing.write_until_landed(
        "end",
        lifecycle.fail_unstarted_reply,
        message_id,
        message_id=message_id,
        record=lambda: {"message_id": message_id, **lifecycle.UNSTARTED},
        on_first_failure=from_memory,
    )
    if generation.end is None:
        if closing is not None:
            generation.finish(*closing)
        else:  # gone, or not pending (then it is not this runner's to end)
            from_memory()
    streaming.unregister(generation)


async def _finish(generation, runner: _Runner, status: str, fault: UpstreamFault | None):
    """Store the end of the reply (retried until it lands, see chat.finishing) and end its
    streams with the closing event of what is stored. Return the stored status (None if the
    reply is gone or its end could not be stored)."""
    plan, attempt = runner.plan, runner.attempt
    message_id = plan.message_id
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
        error_message = lifecycle.INTERRUPTED_MESSAGE
    text = generation.text
    end = {
        "status": status,
        "text": text,
        "model": plan.config.model,
        "input_tokens": call.input_tokens if call else None,
        "output_tokens": call.output_tokens if call else None,
        "tokens_estimated": call.tokens_estimated if call else False,
        "latency_ms": _elapsed_ms(runner.started),
        "ttft_ms": _first_ttft(runner),
        "error_code": fault.code if fault else ("interrupted" if status == "interrupted" else ""),
        "error_message": error_message,
    }
    made: dict = {}  # the stored fields, rendered once (in the database thread)
    call_stored = False

    def write():
        if "fields" not in made:
            made["fields"] = lifecycle.final_fields(**end)
        return lifecycle.store_final_reply(message_id, fields=made["fields"], call=call)

    def from_memory():
        # Readers of this process get the end now, as it will be stored; readers elsewhere see
        # it once stored (the runner keeps the reply's heartbeat and whole text saved meanwhile).
        fields = made.get("fields") or lifecycle.final_fields(**end)
        generation.finish(*closing_event(message_id, fields))

    async def between_tries():
        nonlocal call_stored
        if call is not None and not call_stored:
            # The call happened and may be billed: record it even if the reply's own update
            # keeps failing (once: the final write finds it).
            await db(record_call_once, call)
            call_stored = True
        await db(lifecycle.save_pending_end, message_id, text)

    landed, closing = await finishing.write_until_landed(
        "end",
        write,
        message_id=message_id,
        record=lambda: {
            "message_id": message_id,
            **(made.get("fields") or end),
            "call": finishing.call_record(call) if call else None,
        },
        on_first_failure=from_memory,
        between_tries=between_tries,
    )
    if generation.end is None:  # stored at the first try
        if closing is None:  # the conversation was deleted while the reply streamed
            closing = (
                "error",
                {
                    "message_id": message_id,
                    "status": status,
                    "code": "not_found",
                    "message": "The conversation was deleted.",
                    "retryable": False,
                },
            )
        generation.finish(*closing)
    streaming.unregister(generation)
    await generation.wait_published()
    return closing[1]["status"] if landed and closing is not None else None


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
