"""A reply's upstream attempts: stream, retry transient faults before any text reached the user,
and keep the partial text saved (and the quota reservation alive) while it streams.

The pieces every upstream call shares (fault translation, usage estimate, the AICall record,
the back-off, the release) come from the one call path, ``analytics.quotas.llm_calls``.
"""

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from analytics import quotas
from analytics.quotas.llm_calls import attempt_record, next_retry, usage_of
from analytics.services import CallRecord
from core.db_thread import db
from core.llm import (
    IncompleteStream,
    UpstreamFault,
    cached_tokens_of,
    open_chat_stream,
    read_chunk,
    strip_nul,
    translate_fault,
)
from core.task_types import TaskType

from . import finishing, services, streaming
from .models import Message

logger = logging.getLogger(__name__)


@dataclass
class Attempt:
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


def elapsed_ms(since: float) -> int:
    return int((time.monotonic() - since) * 1000)


class ReplyAttempts:
    """The attempts of one reply, the current one (``attempt``, None once it is recorded) and
    the quota reservation that covers them."""

    def __init__(self, generation: streaming.Generation, plan: services.ReplyPlan, request_id):
        self.generation = generation
        self.plan = plan
        self.request_id = request_id
        self.started = time.monotonic()
        self.attempt: Attempt | None = None
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

    def reserve_again(self, *, force: bool = False) -> None:
        """Hold a fresh worst case (before a retry, or after the old one expired).

        Runs in a worker thread and sets ``self.reservation`` there, so a stop arriving while it
        runs never loses the new reservation.
        """
        if self.reservation is not None:
            self.reservation.release()
        self.reservation = None
        self.reservation = services.reserve_reply(self.plan, force=force)

    def record(self, attempt: Attempt, *, status: str, error_code: str = "") -> CallRecord:
        usage = usage_of(
            messages=self.plan.messages,
            text=self.generation.text[attempt.text_start :],
            input_tokens=attempt.input_tokens,
            output_tokens=attempt.output_tokens,
            cached_input_tokens=attempt.cached_input_tokens,
            sent=attempt.opened,
        )
        return attempt_record(
            task_type=TaskType.CHAT,
            model=self.plan.config.model,
            status=status,
            error_code=error_code,
            attempt=attempt.number,
            streamed=True,
            usage=usage,
            started=attempt.started,
            started_at=attempt.started_at,
            ttft_ms=attempt.ttft_ms,
            variant=self.plan.config.variant,
            prompt_version_id=self.plan.config.prompt_version_id,
            request_id=self.request_id,
            user_id=self.plan.user_id,
            conversation_id=self.plan.conversation_id,
            message_id=self.plan.message_id,
        )

    def final_record(self, status: str, fault: UpstreamFault | None) -> CallRecord | None:
        """The record of the attempt that ended the reply with ``status`` (None if recorded)."""
        if self.attempt is None:
            return None
        by_status: dict[str, str] = {
            Message.Status.COMPLETED: "ok",
            Message.Status.CANCELLED: "cancelled",
            Message.Status.INTERRUPTED: "error",
        }
        call_status = by_status.get(status, fault.call_status if fault else "error")
        error_code = fault.code if fault else ("interrupted" if status == "interrupted" else "")
        return self.record(self.attempt, status=call_status, error_code=error_code)

    def first_ttft(self) -> int | None:
        """Time to first token as the user saw it: from the reply's start, retries included."""
        attempt = self.attempt
        if attempt is None or attempt.ttft_ms is None:
            return None
        return int((attempt.started - self.started) * 1000) + attempt.ttft_ms

    async def stream_once(self, attempt: Attempt) -> None:
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
                        attempt.ttft_ms = elapsed_ms(attempt.started)
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
            attempt = self.attempt = Attempt(number, time.monotonic(), self.generation.length)
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
            delay = next_retry(number, fault, retries=settings.AI_MAX_RETRIES)
            if delay is None or self.generation.length > 0:
                return Message.Status.FAILED, fault
            call = self.record(attempt, status=fault.call_status, error_code=fault.code)
            self.attempt = None  # recorded here; a stop from now on records nothing more
            # The back-off starts from the fault: the record and the next reservation go to the
            # database while it runs, not before it (under load the database thread is busy,
            # and the retry waited for it). Both are tasks of their own: a stop arriving
            # meanwhile neither loses nor doubles them (settle() awaits them).
            self.writes.append(asyncio.ensure_future(finishing.record_attempt(call)))
            reserving = None
            if self.reservation is not None:
                # Each attempt is paid for: the next one must fit the quotas like the first.
                reserving = self.reserving = asyncio.ensure_future(db(self.reserve_again))
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


async def keep_saving(generation: streaming.Generation, attempts: ReplyAttempts) -> None:
    """Save the partial text at a bounded rate; it is also the heartbeat and the stop check.

    It also keeps the quota reservation alive: a reservation that is not renewed expires, which
    is how the reservations of a dead process give their amounts back. One that expired anyway
    (renewals failed for a whole TTL) is taken again, limits ignored: the upstream is already
    streaming, and the counters must show it.
    """
    renewed = time.monotonic()
    while True:
        await asyncio.sleep(settings.CHAT_PERSIST_INTERVAL_SECONDS)
        reservation = attempts.reservation
        if reservation is not None and (
            time.monotonic() - renewed > settings.QUOTA_RESERVATION_TTL_SECONDS / 3
        ):
            try:
                if not await db(reservation.renew):
                    logger.warning(
                        "quota reservation %s had expired; taking it again", reservation.id
                    )
                    await asyncio.shield(db(attempts.reserve_again, force=True))
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
