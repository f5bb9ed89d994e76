"""Writes of the chat app (reads are in ``selectors``). Plain synchronous functions; async
callers wrap them with ``db()``."""

import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from analytics import quotas
from core.errors import AppError
from core.tokens import estimate_messages_tokens, trim_history
from core.user_text import unstorable
from experiments.config import ChatConfig, resolve_config

from .lifecycle import (  # noqa: F401 (the writes that end a reply; callers import them here)
    fail_unstarted_reply,
    finish_reply,
    save_progress,
    store_final_reply,
    sweep_stale_replies,
)
from .models import Conversation, Message
from .selectors import visible_messages


class ChatError(AppError):
    """A request the chat cannot take; ``status`` is the HTTP status to answer with, ``field``
    the request field at fault (if one is)."""


def check_rateable(reply: Message) -> None:
    """Raise ChatError unless ``reply`` is an assistant reply that is no longer being written."""
    if reply.role != Message.Role.ASSISTANT:
        raise ChatError("Only assistant replies can be rated.", code="not_a_reply")
    if reply.status in Message.IN_PROGRESS:
        raise ReplyInProgress("The reply is still being written.")


def refuse_unstorable(value: str, *, field: str) -> None:
    """Raise ChatError(invalid_input) for text no database can store (NUL, lone surrogates)."""
    reason = unstorable(value)
    if reason:
        raise ChatError(f"'{field}' {reason}.", code="invalid_input", field=field)


class ReplyInProgress(ChatError):
    status = 409
    code = "reply_in_progress"


class ConversationGone(ChatError):
    status = 404
    code = "not_found"


class NotInProgress(ChatError):
    status = 409
    code = "not_in_progress"


def clean_content(content: object) -> str:
    if not isinstance(content, str):
        raise ChatError("'content' must be a string.", code="invalid_content")
    refuse_unstorable(content, field="content")
    content = content.strip()
    if not content:
        raise ChatError("The message is empty.", code="empty_content")
    if len(content) > settings.CHAT_MAX_MESSAGE_CHARS:
        raise ChatError(
            f"The message is {len(content):,} characters long; the limit is "
            f"{settings.CHAT_MAX_MESSAGE_CHARS:,}.",
            code="content_too_long",
        )
    return content


def clean_title(title: object) -> str:
    if not isinstance(title, str) or not title.strip():
        raise ChatError("'title' must be a non-empty string.", code="invalid_title")
    refuse_unstorable(title, field="title")
    title = " ".join(title.split())
    if len(title) > 200:
        raise ChatError("The title is longer than 200 characters.", code="invalid_title")
    return title


# `[name:...]`: a bracketed lowercase word and a colon, the shape of machine-read markers such as
# the simulator's fault markers (`[sim:status=401]`) or a tool's `[ref:42]`. They are noise in a
# title. Matched by shape, not by name: production code knows nothing of the simulator.
_MARKER = re.compile(r"\[[a-z][a-z0-9_-]*:[^\[\]\n]*\]")


def fallback_title(content: str, *, words: int = 6) -> str:
    """Return the first words of a message, the title until the model names the conversation
    (and for good if it never does, e.g. when the first reply failed), markers left out."""
    all_words = _MARKER.sub(" ", content).split()
    title = " ".join(all_words[:words])
    if len(title) > 60:
        title = title[:59].rstrip() + "…"
    elif len(all_words) > words:
        title += "…"
    return title or "New conversation"


def create_conversation(*, user, title: str = "") -> Conversation:
    return Conversation.objects.create(user=user, title=title, title_generated=bool(title))


def rename_conversation(*, conversation: Conversation, title: object) -> Conversation:
    conversation.title = clean_title(title)
    conversation.title_generated = True  # a person's title is never replaced by the model's
    conversation.save(update_fields=["title", "title_generated"])
    return conversation


def _start_reply(
    *, conversation: Conversation, user_message: Message, runner_channel: str, title: str = ""
):
    """Store a pending reply to ``user_message`` and touch the conversation (with ``title``, its
    stand-in title, in the same statement)."""
    now = timezone.now()
    try:
        # No savepoint: inside post_message's transaction a conflict rolls back the user's
        # message too, which is what a refused post should leave behind.
        with transaction.atomic(savepoint=False):
            reply = Message.objects.create(
                conversation=conversation,
                role=Message.Role.ASSISTANT,
                reply_to=user_message,
                status=Message.Status.PENDING,
                runner_channel=runner_channel,
                heartbeat_at=now,
            )
    except IntegrityError as exc:  # the partial unique index: another reply is in progress
        raise ReplyInProgress("A reply is already being written in this conversation.") from exc
    Conversation.objects.filter(pk=conversation.pk).update(
        updated_at=now, **({"title": title} if title else {})
    )
    conversation.updated_at = now
    return reply


@dataclass(frozen=True, slots=True)
class Admission:
    """What admitted a message: the configuration and the limits in force when it was posted,
    and the rate-limit slot it took (given back if the message is then not stored).

    The runner of the reply (started by the same request, in the same process) uses both
    rather than reading them again: the reply is generated with the configuration its
    admission checked, and three to six queries are saved per reply.
    """

    config: ChatConfig
    limits: quotas.Limits
    slot: quotas.RequestSlot | None = None


@contextmanager
def _slot_given_back_on_failure(admission: Admission):
    """Give the request's rate-limit slot back if storing its message fails (the loser of two
    posts racing into one conversation, a database error): only a stored message counts."""
    try:
        yield
    except Exception:
        if admission.slot is not None:
            admission.slot.give_back()
        raise


def admit_request(*, user, content: str) -> Admission:
    """Refuse (QuotaExceeded) a message the user's limits cannot take, before anything is stored.

    The check uses the new message and the system prompt (the history is added when the
    generation starts, where the full worst case is reserved); the rate limit takes its slot last,
    so a request refused for another reason costs no slot (and one refused later gives it back).
    """
    config = resolve_config(user, "chat")
    messages = [{"role": "user", "content": content}]
    if config.system_prompt:
        messages.append({"role": "system", "content": config.system_prompt})
    limits = quotas.limits_for(user)
    quotas.check_only(
        user,
        model=config.model,
        input_tokens=estimate_messages_tokens(messages),
        max_tokens=config.max_tokens,
        limits=limits,
    )
    slot = quotas.take_request(user, limits)
    return Admission(config, limits, slot)


class Posted(NamedTuple):
    user_message: Message
    reply: Message
    admission: Admission


def post_message(
    *, conversation: Conversation, content: object, runner_channel: str = ""
) -> Posted:
    """Store the user's message and a pending reply to it; raise if a reply is in progress.

    The quota check runs before the transaction that stores: its own database work (the rate
    limit's row, expired reservations) must not hold locks for the rest of this request. The
    check for a reply in progress comes first, so that a refused post costs no rate-limit slot;
    the partial unique index settles a race with another post (ReplyInProgress as well, and the
    loser gives its slot back).
    """
    text = clean_content(content)
    busy = getattr(conversation, "reply_in_progress", None)
    if busy is None:
        busy = conversation.messages.in_progress().exists()
    if busy:
        raise ReplyInProgress("A reply is already being written in this conversation.")
    admission = admit_request(user=conversation.user, content=text)
    # The slot is given back after the rollback, outside the transaction.
    try:
        with _slot_given_back_on_failure(admission), transaction.atomic():
            user_message = Message.objects.create(
                conversation=conversation, role=Message.Role.USER, content=text
            )
            title = ""
            if not conversation.title:
                title = conversation.title = fallback_title(text)
            reply = _start_reply(
                conversation=conversation,
                user_message=user_message,
                runner_channel=runner_channel,
                title=title,
            )
    except IntegrityError as exc:  # its foreign key, at commit: deleted meanwhile (another tab)
        raise ConversationGone("The conversation was deleted.") from exc
    return Posted(user_message, reply, admission)


def regenerate_reply(*, reply: Message, runner_channel: str = "") -> Posted:
    """Start a new reply to the user message that ``reply`` answered."""
    if reply.role != Message.Role.ASSISTANT or reply.reply_to_id is None:
        raise ChatError("Only an assistant reply can be regenerated.", code="not_a_reply")
    conversation = reply.conversation
    if conversation.messages.in_progress().exists():
        raise ReplyInProgress("A reply is already being written in this conversation.")
    latest_user = conversation.messages.filter(role=Message.Role.USER).last()
    if latest_user is None or latest_user.pk != reply.reply_to_id:
        raise ChatError(
            "Only the reply to the latest message can be regenerated.", code="not_latest_reply"
        )
    user_message = reply.reply_to
    assert user_message is not None  # reply_to_id was checked above
    admission = admit_request(user=conversation.user, content=user_message.content)
    with _slot_given_back_on_failure(admission), transaction.atomic():
        new_reply = _start_reply(
            conversation=conversation, user_message=user_message, runner_channel=runner_channel
        )
    return Posted(user_message, new_reply, admission)


def request_stop(*, reply: Message) -> None:
    """Flag a reply for stopping; the runner sees the flag at its next save."""
    updated = Message.objects.filter(pk=reply.pk, status__in=Message.IN_PROGRESS).update(
        stop_requested=True
    )
    if not updated:
        raise NotInProgress(f"The reply is not in progress (it is {reply.status}).")


@dataclass(frozen=True, slots=True)
class ReplyPlan:
    """Everything the runner needs to call the upstream, read in one go."""

    message_id: int
    conversation_id: int
    user_id: int
    config: ChatConfig
    messages: list[dict]
    first_exchange: bool
    first_user_text: str
    input_tokens: int = 0  # the estimate the reservation is made of
    reservation: quotas.Reservation | None = None
    limits: quotas.Limits | None = None  # the user's, as admitted (None: read them when needed)


def start_generation(*, message: Message, admission: Admission | None = None) -> ReplyPlan | None:
    """Mark the reply streaming and return its plan, or None when it is gone or not pending.

    ``message``: the pending reply, with its conversation and the conversation's user loaded
    (the posting request has them in hand). ``admission``: the configuration and limits the
    POST admitted the message with (else they are read now).
    """
    if message.status != Message.Status.PENDING:
        return None
    message_id = message.pk
    conversation = message.conversation
    if admission is None:
        admission = Admission(
            resolve_config(conversation.user, "chat"), quotas.limits_for(conversation.user)
        )
    config = admission.config
    history = [
        {"role": m.role, "content": m.content}
        for m in visible_messages(conversation)
        if m.created_at <= message.created_at
        and m.pk != message.pk
        and m.content
        and (m.role == Message.Role.USER or m.status == Message.Status.COMPLETED)
    ]
    budget = max(settings.CHAT_CONTEXT_TOKEN_BUDGET - config.max_tokens, 256)
    upstream_messages = (
        [{"role": "system", "content": config.system_prompt}] if (config.system_prompt) else []
    )
    upstream_messages += trim_history(history, budget)
    user_count = sum(1 for m in history if m["role"] == Message.Role.USER)
    now = timezone.now()
    input_tokens = estimate_messages_tokens(upstream_messages)
    try:
        # The worst case of this call is held before the upstream is called (docs/quotas.md).
        reservation = quotas.reserve(
            conversation.user,
            model=config.model,
            input_tokens=input_tokens,
            max_tokens=config.max_tokens,
            limits=admission.limits,
        )
    except quotas.QuotaExceeded as exc:
        Message.objects.filter(pk=message_id, status=Message.Status.PENDING).update(
            status=Message.Status.FAILED,
            model=config.model,
            error_code=exc.code,
            error_message=exc.message,
            finished_at=now,
            heartbeat_at=now,
        )
        quotas.record_refusal(exc, user_id=conversation.user_id, stage="generation")
        raise
    started = Message.objects.filter(pk=message_id, status=Message.Status.PENDING).update(
        status=Message.Status.STREAMING,
        model=config.model,
        prompt_version_id=config.prompt_version_id,
        variant=config.variant,
        heartbeat_at=now,
    )
    if not started:  # deleted (or started) meanwhile
        if reservation is not None:
            reservation.release()
        return None
    return ReplyPlan(
        message_id=message_id,
        conversation_id=conversation.pk,
        user_id=conversation.user_id,
        config=config,
        messages=upstream_messages,
        first_exchange=user_count == 1 and not conversation.title_generated,
        first_user_text=history[-1]["content"] if history else "",
        input_tokens=input_tokens,
        reservation=reservation,
        limits=admission.limits,
    )


@dataclass(frozen=True, slots=True)
class Prepared:
    """``start_generation``'s outcome, computed by the request that posted the message."""

    plan: ReplyPlan | None = None
    error: Exception | None = None


def prepare_reply(*, posted: Posted) -> Prepared:
    """Start the generation of a reply just posted, in the posting request's own database call.

    The runner then calls the upstream at once: under load, a separate start waited in the
    database threads' queue behind the other requests' work (docs/performance.md). A refusal
    (QuotaExceeded) or a fault is handed to the runner, which ends the reply with it.
    """
    try:
        return Prepared(plan=start_generation(message=posted.reply, admission=posted.admission))
    except Exception as exc:
        return Prepared(error=exc)


def reserve_reply(plan: ReplyPlan, *, force: bool = False) -> quotas.Reservation | None:
    """Reserve a reply's worst case again (a retry; with ``force`` an expired reservation,
    limits ignored). A refusal is recorded and raised (QuotaExceeded)."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(pk=plan.user_id)
    try:
        hold = quotas.reserve_anyway if force else quotas.reserve
        return hold(
            user,
            model=plan.config.model,
            input_tokens=plan.input_tokens,
            max_tokens=plan.config.max_tokens,
        )
    except quotas.QuotaExceeded as exc:
        quotas.record_refusal(exc, user_id=plan.user_id, stage="generation")
        raise


_TITLE_JUNK = "\"'*#` \u201c\u201d\u2018\u2019"


def set_generated_title(conversation_id: int, *, title: str, fallback: str) -> bool:
    """Replace the stand-in title with the model's, unless someone renamed it meanwhile."""
    title = re.sub(r"\s+", " ", title).strip().strip(_TITLE_JUNK).rstrip(".")
    if not title:
        return False
    return bool(
        Conversation.objects.filter(
            pk=conversation_id, title=fallback, title_generated=False
        ).update(title=title[:80], title_generated=True)
    )
