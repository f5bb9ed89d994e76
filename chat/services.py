"""Writes of the chat app (reads are in ``selectors``). Plain synchronous functions; async
callers wrap them with ``db()``."""

from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from analytics import quotas
from core.tokens import estimate_messages_tokens, trim_history
from experiments.config import ChatConfig, resolve_config

from . import selectors
from .branches import link_tree, select_version  # noqa: F401 (the tree's writes)
from .cleaning import (  # noqa: F401 (callers import them here)
    clean_content,
    clean_title,
    fallback_title,
    refuse_unstorable,
)
from .errors import (
    ChatError,
    ConversationGone,
    NotInProgress,
    ReplyInProgress,
)
from .lifecycle import (  # noqa: F401 (the writes that end a reply; callers import them here)
    fail_unstarted_reply,
    finish_reply,
    save_progress,
    store_final_reply,
    sweep_stale_replies,
)
from .models import Conversation, Message
from .naming import (  # noqa: F401 (the title's writes; callers import them here)
    rename_conversation,
    set_generated_title,
    store_regenerated_title,
)


def check_rateable(reply: Message) -> None:
    """Raise ChatError unless ``reply`` is an assistant reply that is no longer being written."""
    if reply.role != Message.Role.ASSISTANT:
        raise ChatError("Only assistant replies can be rated.", code="not_a_reply")
    if reply.status in Message.IN_PROGRESS:
        raise ReplyInProgress("The reply is still being written.")


def create_conversation(*, user, title: str = "") -> Conversation:
    return Conversation.objects.create(user=user, title=title, title_generated=bool(title))


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
                parent=user_message,
                status=Message.Status.PENDING,
                runner_channel=runner_channel,
                heartbeat_at=now,
            )
    except IntegrityError as exc:  # the partial unique index: another reply is in progress
        raise ReplyInProgress("A reply is already being written in this conversation.") from exc
    # The new reply is where the conversation now reads (its branch, for an edit or regenerate),
    # touched with its stand-in title in the same statement.
    Conversation.objects.filter(pk=conversation.pk).update(
        updated_at=now, current_leaf=reply, **({"title": title} if title else {})
    )
    conversation.current_leaf = reply
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
    """Store the user's message (at the end of the branch the conversation reads along) and a
    pending reply to it; raise if a reply is in progress.

    The quota check runs before the transaction that stores: its own database work (the rate
    limit's row, expired reservations) must not hold locks for the rest of this request. The
    check for a reply in progress comes first, so that a refused post costs no rate-limit slot;
    the partial unique index settles a race with another post (ReplyInProgress as well, and the
    loser gives its slot back).
    """
    return _post(conversation=conversation, content=content, runner_channel=runner_channel)


def edit_message(*, message: Message, content: object, runner_channel: str = "") -> Posted:
    """Start a new branch from a sent user message: a new version of it (``content``) in the
    same place, and a pending reply; the older branch stays reachable (select_version)."""
    if message.role != Message.Role.USER:
        raise ChatError("Only your own messages can be edited.", code="not_a_user_message")
    return _post(
        conversation=message.conversation,
        content=content,
        runner_channel=runner_channel,
        edited=message,
    )


def _post(
    *,
    conversation: Conversation,
    content: object,
    runner_channel: str,
    edited: Message | None = None,
) -> Posted:
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
            leaf = link_tree(conversation=conversation)
            if edited is not None:
                edited.refresh_from_db(fields=["parent"])
                parent_id = edited.parent_id
            else:
                parent_id = leaf
            user_message = Message.objects.create(
                conversation=conversation,
                role=Message.Role.USER,
                content=text,
                parent_id=parent_id,
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
    except Message.DoesNotExist as exc:  # the edited message, deleted meanwhile
        raise ConversationGone("The message was deleted.") from exc
    return Posted(user_message, reply, admission)


def regenerate_reply(*, reply: Message, runner_channel: str = "") -> Posted:
    """Start a new version of ``reply``: another reply to the same user message, with the same
    context. The earlier versions stay (select_version); the new one is read from now on."""
    if reply.role != Message.Role.ASSISTANT or reply.reply_to_id is None:
        raise ChatError("Only an assistant reply can be regenerated.", code="not_a_reply")
    conversation = reply.conversation
    if conversation.messages.in_progress().exists():
        raise ReplyInProgress("A reply is already being written in this conversation.")
    user_message = reply.reply_to
    assert user_message is not None  # reply_to_id was checked above
    admission = admit_request(user=conversation.user, content=user_message.content)
    with _slot_given_back_on_failure(admission), transaction.atomic():
        link_tree(conversation=conversation)
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
        for m in selectors.context_before(message)
        if m.content and (m.role == Message.Role.USER or m.status == Message.Status.COMPLETED)
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
