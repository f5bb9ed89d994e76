"""Writes of the chat app (reads are in ``selectors``). Plain synchronous functions; async
callers wrap them with ``db()``."""

from contextlib import contextmanager
from typing import NamedTuple

from django.db import IntegrityError, transaction
from django.utils import timezone

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
from .starting import (  # noqa: F401 (starting a reply; callers import them here)
    Admission,
    Opening,
    Prepared,
    ReplyPlan,
    admit_request,
    open_reply,
    reserve_reply,
    start_generation,
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
    *,
    conversation: Conversation,
    user_message: Message,
    runner_channel: str,
    posting: "_Posting",
    title: str = "",
):
    """Store the reply to ``user_message`` (pending, or started by ``posting``) and touch the
    conversation (with ``title``, its stand-in title, in the same statement)."""
    now = timezone.now()
    fields = posting.open(conversation, user_message)
    try:
        # No savepoint: inside post_message's transaction a conflict rolls back the user's
        # message too, which is what a refused post should leave behind.
        with transaction.atomic(savepoint=False):
            reply = Message.objects.create(
                conversation=conversation,
                role=Message.Role.ASSISTANT,
                reply_to=user_message,
                parent=user_message,
                runner_channel=runner_channel,
                **({"status": Message.Status.PENDING, "heartbeat_at": now} | fields),
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


class Posted(NamedTuple):
    user_message: Message
    reply: Message
    admission: Admission
    prepared: Prepared | None = None  # the reply's start, with ``start=True``


class _Posting:
    """One post in its transaction: its admission, and (``start``) its reply's start, made
    before the reply is stored (``open_reply``: it is inserted started).

    ``first``: the conversation had no messages before this post (the context of its reply is
    the new message alone)."""

    def __init__(self, admission: Admission, start: bool, first: bool = False):
        self.admission = admission
        self.start = start
        self.first = first
        self.opening: Opening | None = None

    def open(self, conversation: Conversation, user_message: Message) -> dict:
        """The fields the reply is stored with: started (``start``), else none (pending)."""
        if not self.start:
            return {}
        self.opening = open_reply(
            conversation=conversation,
            user_message=user_message,
            admission=self.admission,
            first=self.first,
        )
        return self.opening.fields

    def posted(self, user_message: Message, reply: Message) -> Posted:
        prepared = self.opening.prepared(reply.pk) if self.opening is not None else None
        return Posted(user_message, reply, self.admission, prepared)


@contextmanager
def _given_back_on_failure(admission: Admission, *, start: bool = False, first: bool = False):
    """Give the request's rate-limit slot back if storing its message fails (the loser of two
    posts racing into one conversation, a database error, the commit): only a stored message
    counts. The reservation of a reply started in the same transaction is released too."""
    posting = _Posting(admission, start, first)
    try:
        yield posting
    except Exception:
        if posting.opening is not None:
            posting.opening.release()
        if admission.slot is not None:
            admission.slot.give_back()
        raise


def post_message(
    *, conversation: Conversation, content: object, runner_channel: str = "", start: bool = False
) -> Posted:
    """Store the user's message (at the end of the branch the conversation reads along) and a
    pending reply to it; raise if a reply is in progress.

    The quota check runs before the transaction that stores: its own database work (the rate
    limit's row, expired reservations) must not hold locks for the rest of this request. The
    check for a reply in progress comes first, so that a refused post costs no rate-limit slot;
    the partial unique index settles a race with another post (ReplyInProgress as well, and the
    loser gives its slot back).

    ``start``: store the reply already started (``open_reply``: its context and reservation,
    the runner's plan in ``Posted.prepared``) in the same transaction, as the API does: one
    commit per post, not two (on PostgreSQL each is a flush to disk, in the one database thread
    every post waits for), and no second statement to mark the reply started.
    """
    return _post(
        conversation=conversation, content=content, runner_channel=runner_channel, start=start
    )


def edit_message(
    *, message: Message, content: object, runner_channel: str = "", start: bool = False
) -> Posted:
    """Start a new branch from a sent user message: a new version of it (``content``) in the
    same place, and a pending reply; the older branch stays reachable (select_version).
    ``start`` as for ``post_message``."""
    if message.role != Message.Role.USER:
        raise ChatError("Only your own messages can be edited.", code="not_a_user_message")
    return _post(
        conversation=message.conversation,
        content=content,
        runner_channel=runner_channel,
        edited=message,
        start=start,
    )


def _post(
    *,
    conversation: Conversation,
    content: object,
    runner_channel: str,
    edited: Message | None = None,
    start: bool = False,
) -> Posted:
    text = clean_content(content)
    busy = getattr(conversation, "reply_in_progress", None)
    if busy is None:
        busy = conversation.messages.in_progress().exists()
    if busy:
        raise ReplyInProgress("A reply is already being written in this conversation.")
    admission = admit_request(user=conversation.user, content=text)
    # A conversation read with selectors.with_reply_in_progress says whether it is empty.
    first = edited is None and getattr(conversation, "has_messages", True) is False
    # The slot is given back after the rollback, outside the transaction.
    try:
        with (
            _given_back_on_failure(admission, start=start, first=first) as posting,
            transaction.atomic(),
        ):
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
                posting=posting,
                title=title,
            )
            posted = posting.posted(user_message, reply)
    except IntegrityError as exc:  # its foreign key, at commit: deleted meanwhile (another tab)
        raise ConversationGone("The conversation was deleted.") from exc
    except Message.DoesNotExist as exc:  # the edited message, deleted meanwhile
        raise ConversationGone("The message was deleted.") from exc
    return posted


def regenerate_reply(*, reply: Message, runner_channel: str = "", start: bool = False) -> Posted:
    """Start a new version of ``reply``: another reply to the same user message, with the same
    context. The earlier versions stay (select_version); the new one is read from now on.
    ``start`` as for ``post_message``."""
    if reply.role != Message.Role.ASSISTANT or reply.reply_to_id is None:
        raise ChatError("Only an assistant reply can be regenerated.", code="not_a_reply")
    conversation = reply.conversation
    if conversation.messages.in_progress().exists():
        raise ReplyInProgress("A reply is already being written in this conversation.")
    user_message = reply.reply_to
    assert user_message is not None  # reply_to_id was checked above
    admission = admit_request(user=conversation.user, content=user_message.content)
    with _given_back_on_failure(admission, start=start) as posting, transaction.atomic():
        link_tree(conversation=conversation)
        new_reply = _start_reply(
            conversation=conversation,
            user_message=user_message,
            runner_channel=runner_channel,
            posting=posting,
        )
        return posting.posted(user_message, new_reply)


def request_stop(*, reply: Message) -> None:
    """Flag a reply for stopping; the runner sees the flag at its next save."""
    updated = Message.objects.filter(pk=reply.pk, status__in=Message.IN_PROGRESS).update(
        stop_requested=True
    )
    if not updated:
        raise NotInProgress(f"The reply is not in progress (it is {reply.status}).")
