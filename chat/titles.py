"""The title calls (task type ``title``): after a conversation's first exchange, and again
whenever its owner asks (``regenerate_title``, ``POST /api/conversations/<id>/title``).

Transient faults are retried like a reply's attempts (``AI_MAX_RETRIES``, the same back-off),
each attempt recorded as its own AICall; the first words of the message stay the title if every
attempt of the first call fails. Both go the one call path
(``analytics.quotas.llm_calls.complete``): reserved against the user's quotas, charged.
"""

import logging

from django.conf import settings
from django.shortcuts import get_object_or_404

from analytics.quotas import llm_calls
from core.db_thread import db, through_cancel
from core.llm import UpstreamFault
from core.task_types import TaskType
from experiments.config import resolve_config

from . import finishing, selectors, services
from .cleaning import MARKER
from .errors import ChatError, ReplyInProgress
from .models import Conversation, Message

logger = logging.getLogger(__name__)


def _title_request(text: str) -> tuple:
    """Return the title call's config and messages (settings only: no database, no thread)."""
    config = resolve_config(None, "title")
    messages = [
        {"role": "system", "content": config.system_prompt},
        {"role": "user", "content": text[:2000]},
    ]
    return config, messages


async def name_conversation(plan: services.ReplyPlan, request_id: str) -> None:
    """Ask the model for a short title; the first words stay on failure."""
    fallback = services.fallback_title(plan.first_user_text)
    try:
        config, messages = _title_request(plan.first_user_text)
        answer = await llm_calls.complete(
            task_type=TaskType.TITLE,
            model=config.model,
            messages=messages,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            refusal_stage="title",
            user_id=plan.user_id,
            limits=plan.limits,  # the user's, as the reply was admitted with
            variant=config.variant,
            request_id=request_id,
            conversation_id=plan.conversation_id,
            retries=settings.AI_MAX_RETRIES,
            # Each attempt's record is retried until it lands, like a reply's.
            record=finishing.record_attempt,
        )
    except Exception:
        logger.warning("could not start the title of %s", plan.conversation_id, exc_info=True)
        return
    if not answer.text or answer.cancelled:
        return  # the first words stay the title (quota refused, every attempt failed, stop)
    try:
        await db(
            services.set_generated_title,
            plan.conversation_id,
            title=answer.text,
            fallback=fallback,
        )
    except Exception:
        logger.warning(
            "could not store the title of conversation %s", plan.conversation_id, exc_info=True
        )


# The regenerated title reads the whole branch, not only its first message.
TRANSCRIPT_PROMPT = (
    "Write a title of at most six words for the conversation below (the user's messages and "
    "the assistant's replies, oldest first). Reply with the title only, no quotes."
)
TRANSCRIPT_CHARS = 4000  # of the branch sent for a title: its first message, then the latest
MESSAGE_CHARS = 800  # of each message in it


def branch_transcript(messages: list[tuple[str, str]]) -> str:
    """Return ``(role, text)`` pairs as ``User: ...`` / ``Assistant: ...`` paragraphs: the first
    message, then as many of the latest as fit ``TRANSCRIPT_CHARS``, each cut to
    ``MESSAGE_CHARS``, bracketed ``[word:...]`` markers left out (as in a stand-in title)."""
    parts = []
    for role, text in messages:
        text = " ".join(MARKER.sub(" ", text).split())
        if not text:
            continue
        if len(text) > MESSAGE_CHARS:
            text = text[: MESSAGE_CHARS - 1].rstrip() + "…"
        parts.append(f"{'User' if role == Message.Role.USER else 'Assistant'}: {text}")
    if not parts:
        return ""
    kept, size = [], len(parts[0])
    for part in reversed(parts[1:]):
        if size + len(part) + 2 > TRANSCRIPT_CHARS:
            break
        kept.append(part)
        size += len(part) + 2
    return "\n\n".join([parts[0], *reversed(kept)])


def _title_source(user, conversation_id: int) -> str:
    """The transcript of the branch the conversation reads along; 404 if it is not the user's,
    409 while a reply is being written or when there is nothing to name it after."""
    conversation = get_object_or_404(Conversation, pk=conversation_id, user=user)
    if conversation.messages.in_progress().exists():  # on any branch
        raise ReplyInProgress("Wait for the reply being written before regenerating the title.")
    transcript = branch_transcript(
        [
            (m.role, m.content)
            for m in selectors.visible_messages(conversation)
            if m.role == Message.Role.USER or m.status == Message.Status.COMPLETED
        ]
    )
    if not transcript:
        raise ChatError(
            "The conversation has no messages to name it after.",
            code="nothing_to_name",
            status=409,
        )
    return transcript


async def regenerate_title(*, user, conversation_id: int, request_id: str) -> Conversation:
    """Ask the model for a new title from the conversation's current branch and store it.

    Raise QuotaExceeded (recorded as refused at stage ``title``) or ChatError (404, 409, 502
    for the last attempt's fault or an answer with no usable title, 503 when the call was
    cancelled: the process stopping, or the client gone); the title is then unchanged.
    """
    transcript = await db(_title_source, user, conversation_id)
    config = resolve_config(None, "title")
    answer = await llm_calls.complete(
        task_type=TaskType.TITLE,
        model=config.model,
        messages=[
            {"role": "system", "content": TRANSCRIPT_PROMPT},
            {"role": "user", "content": transcript},
        ],
        temperature=config.temperature,
        max_tokens=config.max_tokens,
        refusal_stage="title",
        user_id=user.pk,
        variant=config.variant,
        request_id=request_id,
        conversation_id=conversation_id,
        retries=settings.AI_MAX_RETRIES,
        record=finishing.record_attempt,
    )
    if answer.refused is not None:
        raise answer.refused
    if answer.fault is not None:
        raise _title_fault(answer.fault)
    if answer.cancelled:
        raise ChatError(
            "The request was interrupted before the title was written. Try again.",
            code="interrupted",
            status=503,
            retryable=True,
        )
    # Charged for: stored even if the client goes away now.
    conversation, _ = await through_cancel(
        db(
            services.store_regenerated_title,
            conversation_id=conversation_id,
            user=user,
            title=answer.text,
        )
    )
    return conversation


def _title_fault(fault: UpstreamFault) -> ChatError:
    """The upstream's failure as the answer to the request (502, its code and retryability)."""
    return ChatError(
        f"The title could not be generated: {fault.message}",
        code=fault.code,
        status=502,
        retryable=fault.retryable,
    )
