"""The generation runner: one asyncio task per reply, in the process that took the message.

It streams from the upstream (``chat.attempts``: every delta goes to ``Generation.append``, the
in-process fan-out; transient faults are retried before any text reached the user; a side task
saves the partial text at a bounded rate), and at the end stores the reply and exactly one AICall
per attempt (``chat.finishing``). ``shutdown`` lets a stopping process's replies end.
"""

import asyncio
import logging

from prometheus_client import Gauge

from analytics import quotas
from analytics.quotas.llm_calls import release
from core import draining
from core.db_thread import through_cancel
from core.llm import translate_fault
from core.metrics import REGISTRY

from . import finishing, streaming, titles
from .attempts import ReplyAttempts, elapsed_ms, keep_saving
from .models import Message
from .services import Prepared
from .state import closing_event

logger = logging.getLogger(__name__)

REPLIES_RUNNING = Gauge(
    "aiproject_replies_running",
    "Replies this process is generating, from the post to their stored end (the title call "
    "after a first exchange included): what a drain waits for.",
    registry=REGISTRY,
)


def start(
    message_id: int,
    *,
    user_id: int,
    prepared: Prepared,
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
    REPLIES_RUNNING.inc()
    generation.task.add_done_callback(lambda _task: REPLIES_RUNNING.dec())
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


async def run(
    generation: streaming.Generation,
    *,
    prepared: Prepared,
    request_id: str = "",
) -> None:
    """Generate one reply. ``prepared``: its start, made by the posting request's database
    call (services.post_message(..., start=True))."""
    message_id = generation.message_id
    plan, error = prepared.plan, prepared.error
    if isinstance(error, quotas.QuotaExceeded):  # stored as failed with the limit's message
        _end_unstarted(generation, error.code, error.message)
        return
    if error is not None:
        logger.error("could not start the generation of %s", message_id, exc_info=error)
    if plan is None:
        # Never leave the reply pending: it would block its conversation until swept.
        await through_cancel(finishing.fail_unstarted(generation))
        return

    attempts = ReplyAttempts(generation, plan, request_id)
    saver = asyncio.create_task(keep_saving(generation, attempts))
    status, fault = Message.Status.CANCELLED, None
    interrupted = False  # the process is shutting down (see shutdown())
    try:
        if not generation.stop_requested:
            # From here on a stop request cancels the upstream stream at once.
            generation.cancellable = asyncio.create_task(attempts.run())
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
    ending = finishing.end_reply(
        generation,
        status=status,
        fault=fault,
        call=attempts.final_record(status, fault),
        model=plan.config.model,
        latency_ms=elapsed_ms(attempts.started),
        ttft_ms=attempts.first_ttft(),
        conversation_id=plan.conversation_id,
    )
    stored, cancelled = await through_cancel(ending)
    interrupted = interrupted or cancelled
    _, cancelled = await through_cancel(attempts.settle())
    interrupted = interrupted or cancelled
    if attempts.reservation is not None:
        _, cancelled = await through_cancel(release(attempts.reservation))
        interrupted = interrupted or cancelled
    if stored == Message.Status.COMPLETED and plan.first_exchange and not interrupted:
        await titles.name_conversation(plan, request_id)


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
