"""Writes that must land: the end of a reply, and the record of each upstream attempt.

``end_reply`` stores a reply's end with its last call and closes its streams with what is stored.

Such a write is retried with back-off (0.25 s doubling to 2 s) while it fails (the database is
down, or refuses it), for up to ``CHAT_FINISH_RETRY_SECONDS`` [300], kept in memory meanwhile.
If it still fails then, it is logged at ERROR with its whole record (the reply's fields, the
call's record; never a key) and counted in ``aiproject_chat_final_writes_lost_total``, which an
operator can alert on and replay from. A process that shuts down calls
``flush_pending_writes``: every waiting write is tried again at once, and given up (logged and
counted the same way) when the flush's time is over, rather than vanishing with the process.

The writes themselves are safe to try again (``chat.lifecycle.store_final_reply``,
``analytics.services.record_call_once``): a try whose commit landed unseen is not doubled.
"""

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from prometheus_client import Counter

from analytics.services import CallRecord, record_call_once
from core.db_thread import db
from core.llm import UpstreamFault
from core.metrics import REGISTRY

from . import lifecycle, streaming
from .state import closing_event

logger = logging.getLogger(__name__)

FIRST_RETRY_DELAY_SECONDS = 0.25
MAX_RETRY_DELAY_SECONDS = 2.0

WRITE_RETRIES = Counter(
    "aiproject_chat_final_write_retries",
    "Failed tries of a write that must land (a reply's end, an attempt's call record), retried.",
    ["kind"],
    registry=REGISTRY,
)
WRITES_LOST = Counter(
    "aiproject_chat_final_writes_lost",
    "Writes that must land, given up after CHAT_FINISH_RETRY_SECONDS or at shutdown "
    "(each logged at ERROR with its record).",
    ["kind"],
    registry=REGISTRY,
)

_waiting: set[asyncio.Event] = set()  # the back-off sleeps of the writes being retried
# One future per write that failed at least once, done when it lands or is given up.
_retrying: set[asyncio.Future] = set()
_given_up = 0
_flush_deadline: float | None = None


def call_record(call: CallRecord) -> dict[str, Any]:
    """A call record for a log line: the upstream's host only (its URL may carry credentials)."""
    record = asdict(call)
    record["base_url"] = urlsplit(call.base_url).hostname or ""
    return record


async def write_until_landed(
    kind: str,
    fn: Callable[..., Any],
    *args,
    message_id: int | None,
    record: Callable[[], dict[str, Any]],
    on_first_failure: Callable[[], None] | None = None,
    between_tries: Callable[[], Awaitable[Any]] | None = None,
    **kwargs,
) -> tuple[bool, Any]:
    """Run ``fn(*args, **kwargs)`` with ``db()`` until it succeeds; return ``(landed, result)``.

    ``record``: the data the write stores, for the ERROR line if it is given up.
    ``on_first_failure``: run once, after the first failed try (e.g. send the closing event
    from memory). ``between_tries``: awaited after each back-off (its failures are ignored).
    """
    global _given_up
    deadline = time.monotonic() + settings.CHAT_FINISH_RETRY_SECONDS
    delay = FIRST_RETRY_DELAY_SECONDS
    failures = 0
    wake = asyncio.Event()
    ended = asyncio.get_running_loop().create_future()
    try:
        while True:
            try:
                return True, await db(fn, *args, **kwargs)
            except Exception:
                failures += 1
                WRITE_RETRIES.labels(kind).inc()
                if failures == 1:
                    _retrying.add(ended)
                    logger.warning(
                        "could not store the %s of reply %s; retrying for up to %.0f s",
                        kind,
                        message_id,
                        settings.CHAT_FINISH_RETRY_SECONDS,
                        exc_info=True,
                    )
                    if on_first_failure is not None:
                        on_first_failure()
            end = deadline if _flush_deadline is None else min(deadline, _flush_deadline)
            remaining = end - time.monotonic()
            if remaining <= 0:
                WRITES_LOST.labels(kind).inc()
                _given_up += 1
                logger.error(
                    "gave up storing the %s of reply %s after %s tries; its record: %s",
                    kind,
                    message_id,
                    failures,
                    json.dumps(record(), default=str, ensure_ascii=False),
                    extra={"event": "final_write_lost", "kind": kind, "message_id": message_id},
                )
                return False, None
            # Back-off starts from the fault; a flush (shutdown) cuts it short.
            _waiting.add(wake)
            try:
                async with asyncio.timeout(min(delay, remaining)):
                    await wake.wait()
            except TimeoutError:
                pass
            finally:
                _waiting.discard(wake)
                wake.clear()
            delay = min(delay * 2, MAX_RETRY_DELAY_SECONDS)
            if between_tries is not None:
                try:
                    await between_tries()
                except Exception:  # the write itself says whether the database is back
                    logger.debug("between tries of reply %s", message_id, exc_info=True)
    finally:
        _retrying.discard(ended)
        ended.set_result(None)


async def record_attempt(call: CallRecord) -> bool:
    """Store one upstream attempt's call record (once), retrying as above; True once stored."""
    tries = 0

    def write():
        nonlocal tries
        tries += 1
        return record_call_once(call, retry=tries > 1)

    landed, _ = await write_until_landed(
        "call record",
        write,
        message_id=call.message_id,
        record=lambda: call_record(call),
    )
    return landed


def pending_writes() -> int:
    """How many writes are being retried (they failed at least once) in this process."""
    return len(_retrying)


async def flush_pending_writes(grace_seconds: float) -> int:
    """Try every write being retried at once, and give up those still failing after
    ``grace_seconds`` (each logged at ERROR with its record and counted). Return how many were
    given up (or had not ended a second later). For a process that is about to exit."""
    global _flush_deadline
    _flush_deadline = time.monotonic() + max(grace_seconds, 0)
    lost_before, retrying = _given_up, list(_retrying)
    for wake in list(_waiting):
        wake.set()
    if not retrying:
        return 0
    # Each write gives up by itself at the flush deadline; wait a little past it for them.
    _, still = await asyncio.wait(retrying, timeout=max(grace_seconds, 0) + 1.0)
    not_stored = _given_up - lost_before + len(still)
    logger.info("flushed %s pending write(s): %s not stored", len(retrying), not_stored)
    return not_stored


async def end_reply(
    generation: streaming.Generation,
    *,
    status: str,
    fault: UpstreamFault | None,
    call: CallRecord | None,
    model: str,
    latency_ms: int,
    ttft_ms: int | None,
    conversation_id: int | None = None,
) -> str | None:
    """Store the end of a reply (retried until it lands) with the record of its last attempt
    (``call``, None if recorded already), and end its streams with the closing event of what is
    stored. Return the stored status (None if the reply is gone or its end was not stored).
    ``conversation_id``: the reply's conversation (see ``lifecycle.store_final_reply``)."""
    message_id = generation.message_id
    error_code = fault.code if fault else ("interrupted" if status == "interrupted" else "")
    error_message = ""
    if fault is not None:
        error_message = fault.message
    elif status == "interrupted":
        error_message = lifecycle.INTERRUPTED_MESSAGE
    text = generation.text
    end: dict[str, Any] = {
        "status": status,
        "text": text,
        "model": model,
        "input_tokens": call.input_tokens if call else None,
        "output_tokens": call.output_tokens if call else None,
        "tokens_estimated": call.tokens_estimated if call else False,
        "latency_ms": latency_ms,
        "ttft_ms": ttft_ms,
        "error_code": error_code,
        "error_message": error_message,
    }
    made: dict = {}  # the stored fields, rendered once (in the database thread)
    call_stored = False
    tries = 0

    def write():
        nonlocal tries
        tries += 1
        if "fields" not in made:
            made["fields"] = lifecycle.final_fields(**end)
        return lifecycle.store_final_reply(
            message_id,
            fields=made["fields"],
            call=call,
            retry=tries > 1,
            conversation_id=conversation_id,
        )

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

    landed, closing = await write_until_landed(
        "end",
        write,
        message_id=message_id,
        record=lambda: {
            "message_id": message_id,
            **(made.get("fields") or end),
            "call": call_record(call) if call else None,
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


async def fail_unstarted(generation: streaming.Generation) -> None:
    """Store a reply that could not start as failed, and end its streams with what is stored."""
    message_id = generation.message_id

    def from_memory():  # what will be stored, while the write is retried
        generation.finish(*closing_event(message_id, lifecycle.UNSTARTED))

    _, closing = await write_until_landed(
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
