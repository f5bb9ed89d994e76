"""Starting a reply's generation: what admits a message (``admit_request``), and the reply's
plan (its context, its reservation, its start), made by the request that posted it: before the
reply is stored, which is then inserted started (``open_reply``), or for a stored pending reply
(``start_generation``). Writes, like ``services``, which re-exports them."""

from dataclasses import dataclass, replace

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


@dataclass(frozen=True, slots=True)
class _Context:
    """What a reply is generated from: the upstream messages and what the plan says of them."""

    messages: list[dict]
    input_tokens: int
    first_exchange: bool
    first_user_text: str


def _context(conversation, config: ChatConfig, path: list[Message]) -> _Context:
    """The upstream messages of a reply that follows ``path`` (root first): the system prompt
    and as much of the history as the token budget holds."""
    history = [
        {"role": m.role, "content": m.content}
        for m in path
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
    return _Context(
        messages=upstream_messages,
        input_tokens=input_tokens,
        first_exchange=user_count == 1 and not conversation.title_generated,
        first_user_text=history[-1]["content"] if history else "",
    )


def _reserve(conversation, config: ChatConfig, context: _Context, limits):
    """Hold the worst case of the reply's call before the upstream is called (docs/quotas.md);
    a refusal is recorded and raised (QuotaExceeded)."""
    try:
        return quotas.reserve(
            conversation.user,
            model=config.model,
            input_tokens=context.input_tokens,
            max_tokens=config.max_tokens,
            limits=limits,
        )
    except quotas.QuotaExceeded as exc:
        quotas.record_refusal(exc, user_id=conversation.user_id, stage="generation")
        raise


def _plan(reply_id: int, conversation, admission: Admission, context: _Context, reservation):
    return ReplyPlan(
        message_id=reply_id,
        conversation_id=conversation.pk,
        user_id=conversation.user_id,
        config=admission.config,
        messages=context.messages,
        first_exchange=context.first_exchange,
        first_user_text=context.first_user_text,
        input_tokens=context.input_tokens,
        reservation=reservation,
        limits=admission.limits,
    )


def _started_fields(config: ChatConfig, now) -> dict:
    return {
        "status": Message.Status.STREAMING,
        "model": config.model,
        "prompt_version_id": config.prompt_version_id,
        "variant": config.variant,
        "heartbeat_at": now,
    }


def _refused_fields(config: ChatConfig, exc: quotas.QuotaExceeded, now) -> dict:
    return {
        "status": Message.Status.FAILED,
        "model": config.model,
        "error_code": exc.code,
        "error_message": exc.message,
        "finished_at": now,
        "heartbeat_at": now,
    }


def start_generation(*, message: Message, admission: Admission | None = None) -> ReplyPlan | None:
    """Mark a stored pending reply streaming and return its plan, or None when it is gone or
    not pending. (A posted reply is stored started instead: ``open_reply``.)

    ``message``: the pending reply, with its conversation and the conversation's user loaded.
    ``admission``: the configuration and limits its message was admitted with (else they are
    read now).
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
    context = _context(conversation, config, selectors.context_before(message))
    now = timezone.now()
    pending = Message.objects.filter(pk=message_id, status=Message.Status.PENDING)
    try:
        reservation = _reserve(conversation, config, context, admission.limits)
    except quotas.QuotaExceeded as exc:
        pending.update(**_refused_fields(config, exc, now))
        raise
    try:
        started = pending.update(**_started_fields(config, now))
    except BaseException:
        if reservation is not None:
            reservation.release()
        raise
    if not started:  # deleted (or started) meanwhile
        if reservation is not None:
            reservation.release()
        return None
    return _plan(message_id, conversation, admission, context, reservation)


@dataclass(frozen=True, slots=True)
class Prepared:
    """``start_generation``'s outcome, computed by the request that posted the message."""

    plan: ReplyPlan | None = None
    error: Exception | None = None


@dataclass(frozen=True, slots=True)
class Opening:
    """A posted reply's start, made before the reply is stored: the fields it is inserted with
    (started, or failed by its quota; none: pending, for the runner to fail) and its plan (the
    message id still 0) or the error the runner ends it with."""

    fields: dict
    plan: ReplyPlan | None = None
    error: Exception | None = None

    def prepared(self, reply_id: int) -> Prepared:
        plan = replace(self.plan, message_id=reply_id) if self.plan is not None else None
        return Prepared(plan=plan, error=self.error)

    def release(self) -> None:
        """Give the reservation back (the reply was not stored after all)."""
        if self.plan is not None and self.plan.reservation is not None:
            self.plan.reservation.release()


def open_reply(
    *, conversation, user_message: Message, admission: Admission, first: bool
) -> Opening:
    """Start the reply to ``user_message`` (just stored, in the posting transaction) before the
    reply itself is stored: its context, its reservation, and the fields that store it started.

    The reply is then inserted ``streaming`` in one statement (no pending row to update) and
    the runner calls the upstream at once; under load, a separate start waited in the database
    thread's queue behind the other requests' work (docs/performance.md). ``first``: the
    conversation had no messages before this one, so its context is this message alone (not
    read again). A refusal (QuotaExceeded) stores the reply failed with the limit's message;
    another fault (the quota store down) stores it pending for the runner to fail; a database
    error is raised (the post is then not stored at all).
    """
    config = admission.config
    path = [user_message] if first else selectors.context_through(user_message)
    context = _context(conversation, config, path)
    now = timezone.now()
    try:
        reservation = _reserve(conversation, config, context, admission.limits)
    except quotas.QuotaExceeded as exc:
        return Opening(_refused_fields(config, exc, now), error=exc)
    except DatabaseError:
        raise
    except Exception as exc:
        return Opening({}, error=exc)
    plan = _plan(0, conversation, admission, context, reservation)
    return Opening(_started_fields(config, now), plan=plan)


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
