"""Starting a reply's generation: what admits a message (``admit_request``), and the reply's
plan (``start_generation``: its context, its reservation, its start), made by the request that
posted it. Writes, like ``services``, which re-exports them."""

from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from analytics import quotas
from core.tokens import estimate_messages_tokens, fit_history
from experiments.config import ChatConfig, resolve_config

from . import selectors
from .models import Message


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
    kept, kept_tokens = fit_history(history, budget)
    input_tokens = estimate_messages_tokens(upstream_messages) + kept_tokens  # + system prompt
    upstream_messages += kept
    user_count = sum(1 for m in history if m["role"] == Message.Role.USER)
    now = timezone.now()
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
    try:
        started = Message.objects.filter(pk=message_id, status=Message.Status.PENDING).update(
            status=Message.Status.STREAMING,
            model=config.model,
            prompt_version_id=config.prompt_version_id,
            variant=config.variant,
            heartbeat_at=now,
        )
    except BaseException:
        if reservation is not None:
            reservation.release()
        raise
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


def start_posted(reply: Message, admission: Admission) -> Prepared:
    """Start the generation of a reply just posted, in the posting request's own database call.

    The runner then calls the upstream at once: under load, a separate start waited in the
    database threads' queue behind the other requests' work (docs/performance.md). A refusal
    (QuotaExceeded) or another fault (the quota store down) is handed to the runner, which ends
    the reply with it; a database error is raised (in the posting transaction: the post is then
    not stored at all, rather than committed without its start).
    """
    try:
        return Prepared(plan=start_generation(message=reply, admission=admission))
    except DatabaseError:
        raise
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
