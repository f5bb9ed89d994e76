"""The writes that move a started reply to its end: saves (the heartbeat), the final write, sweeps.

A terminal status (completed, cancelled, failed, interrupted) is never overwritten: every write
here is one UPDATE filtered on a status still in progress (pending or streaming), never a read
then a write. Whoever writes first wins, and everyone else reads what won: the closing event a
runner sends is built from what is stored (``store_final_reply`` returns the stored reply's event
when its own update found the reply finished already).

A sweep (``sweep_stale_replies``) marks a reply ``interrupted`` only when its runner is gone: its
heartbeat (the runner's periodic save) is older than ``CHAT_STALE_AFTER_SECONDS``, a sweeper
recorded that finding (``stale_since``), and the runner still did not save for
``CHAT_SWEEP_GRACE_SECONDS`` after it. During a database outage the runner cannot save, so its
heartbeat goes stale although it lives; nobody can sweep during the outage either, and once the
database is back the sweeper's first finding only starts the grace, in which the live runner's
next save (every ``CHAT_PERSIST_INTERVAL_SECONDS``, or its retried final write) lands first.
"""

from dataclasses import replace
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from analytics.services import CallRecord, record_call_once

from .models import Conversation, Message
from .rendering import render_markdown
from .state import ReplyState, closing_event, final_event

INTERRUPTED_MESSAGE = "The server stopped while writing this reply. Please retry."
UNSTARTED = {
    "status": Message.Status.FAILED,
    "error_code": "internal_error",
    "error_message": "The reply could not be started. Please retry.",
}


def _in_progress(message_id: int):
    return Message.objects.filter(pk=message_id, status__in=Message.IN_PROGRESS)


def fail_unstarted_reply(message_id: int) -> tuple[str, dict] | None:
    """Mark a reply whose generation could not start as failed (if it is still pending).

    Return the stored reply's closing event (None when it is gone).
    """
    now = timezone.now()
    updated = Message.objects.filter(pk=message_id, status=Message.Status.PENDING).update(
        **UNSTARTED, finished_at=now, heartbeat_at=now
    )
    if updated:
        return closing_event(message_id, UNSTARTED)
    return _stored_end(message_id)


def save_progress(message_id: int, text: str) -> bool:
    """Save the partial text and heartbeat; return True when the runner must stop.

    It must stop when a stop was requested, and when the reply is no longer in progress: a
    sweep marked it interrupted (the runner looked dead), and that status stands.
    """
    updated = Message.objects.filter(
        pk=message_id, stop_requested=False, status=Message.Status.STREAMING
    ).update(content=text, heartbeat_at=timezone.now())
    if updated:
        return False
    return (
        Message.objects.filter(pk=message_id)
        .filter(Q(stop_requested=True) | ~Q(status__in=Message.IN_PROGRESS))
        .exists()
    )


def save_pending_end(message_id: int, text: str) -> bool:
    """While the final write of a reply is retried: save its whole text and the heartbeat.

    The heartbeat keeps sweepers away from a runner that is alive, and readers in other
    processes get the whole text meanwhile. Return False when the reply is no longer in progress.
    """
    return bool(_in_progress(message_id).update(content=text, heartbeat_at=timezone.now()))


def final_fields(
    *,
    status: str,
    text: str,
    model: str,
    input_tokens: int | None,
    output_tokens: int | None,
    tokens_estimated: bool,
    latency_ms: int,
    ttft_ms: int | None,
    error_code: str = "",
    error_message: str = "",
) -> dict[str, Any]:
    """Return the fields of a finished reply as they will be stored (HTML rendered here)."""
    total = (input_tokens or 0) + (output_tokens or 0) if output_tokens is not None else None
    return {
        "status": status,
        "content": text,
        "html": render_markdown(text) if text else "",
        "model": model[:200],
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": total,
        "tokens_estimated": tokens_estimated,
        "latency_ms": latency_ms,
        "ttft_ms": ttft_ms,
        "error_code": error_code[:64],
        "error_message": error_message[:300],
    }


def store_final_reply(
    message_id: int,
    *,
    fields: dict[str, Any],
    call: CallRecord | None = None,
    retry: bool = True,
    conversation_id: int | None = None,
) -> tuple[str, dict] | None:
    """Store the final reply and its call record in one transaction; safe to retry.

    The reply is written only while it is in progress. Return the closing SSE event of what is
    stored: built from ``fields`` when this write stored them, else read back (a sweep or an
    earlier try of this very write won); None when the reply is gone (conversation deleted).
    The call is recorded once whatever the number of tries (``record_call_once``; ``retry``
    False: the first try, which looks for no earlier one). ``conversation_id``: the reply's
    conversation, when the caller knows it (touched by its key rather than through a join).
    """
    now = timezone.now()
    with transaction.atomic():
        updated = _in_progress(message_id).update(**fields, finished_at=now, heartbeat_at=now)
        if updated:
            touched = (
                Conversation.objects.filter(pk=conversation_id)
                if conversation_id is not None
                else Conversation.objects.filter(messages__pk=message_id)
            )
            touched.update(updated_at=now)
        if call is not None:
            if not updated and not Message.objects.filter(pk=message_id).exists():
                # The conversation was deleted while the reply streamed.
                call = replace(call, message_id=None, conversation_id=None)
            # Last before the commit: its log line goes out only if nothing else failed.
            record_call_once(call, retry=retry)
    if updated:
        return closing_event(message_id, fields)
    return _stored_end(message_id)


def finish_reply(message_id: int, *, call: CallRecord | None = None, **end) -> tuple | None:
    """``store_final_reply`` of the fields made from ``end`` (see ``final_fields``)."""
    return store_final_reply(message_id, fields=final_fields(**end), call=call)


def _stored_end(message_id: int) -> tuple[str, dict] | None:
    message = Message.objects.select_related("conversation").filter(pk=message_id).first()
    if message is None:
        return None
    state = ReplyState.from_message(message)
    if state.in_progress:  # not ours to end (a pending reply another runner owns)
        return None
    return final_event(state)


def sweep_stale_replies(*, message_id: int | None = None) -> int:
    """Mark replies whose runner is gone as interrupted; return how many.

    Two steps, each a filtered UPDATE: a reply found stale gets ``stale_since``; one found stale
    ``CHAT_SWEEP_GRACE_SECONDS`` ago with no save since (heartbeat not after the finding) is
    interrupted. The grace starts when the database was up (the finding was written), so a
    runner that lived through an outage saves first.
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.CHAT_STALE_AFTER_SECONDS)
    stale = Message.objects.in_progress().filter(heartbeat_at__lt=cutoff)
    if message_id is not None:
        stale = stale.filter(pk=message_id)
    confirmed = stale.filter(
        stale_since__lte=now - timedelta(seconds=settings.CHAT_SWEEP_GRACE_SECONDS),
        stale_since__gte=F("heartbeat_at"),
    )
    count = 0
    for pk, content, heartbeat_at in confirmed.values_list("pk", "content", "heartbeat_at"):
        # Only if nothing was saved since the read (the heartbeat moves with every save).
        count += Message.objects.filter(
            pk=pk, status__in=Message.IN_PROGRESS, heartbeat_at=heartbeat_at
        ).update(
            status=Message.Status.INTERRUPTED,
            html=render_markdown(content) if content else "",
            error_code="interrupted",
            error_message=INTERRUPTED_MESSAGE,
            finished_at=now,
        )
    # New findings (never found, or saved since the last finding); a zero grace confirms at once.
    found = stale.filter(Q(stale_since__isnull=True) | Q(stale_since__lt=F("heartbeat_at")))
    if found.update(stale_since=now) and settings.CHAT_SWEEP_GRACE_SECONDS == 0:
        count += sweep_stale_replies(message_id=message_id)
    return count
