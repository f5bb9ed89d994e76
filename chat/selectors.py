"""Reads of the chat app. Plain synchronous functions; async callers wrap them with ``db()``."""

from django.db.models import Exists, OuterRef
from django.utils import timezone

from .models import Conversation, Message
from .state import ReplyState


def conversations_of(user, *, limit: int = 200) -> list[Conversation]:
    """Return the user's conversations, newest first (the model's ordering)."""
    return list(Conversation.objects.filter(user=user)[:limit])


def replies_in_progress(conversation: Conversation) -> list[tuple[int, str]]:
    """Return (id, runner channel) of the conversation's replies being written."""
    return list(conversation.messages.in_progress().values_list("pk", "runner_channel"))


def with_reply_in_progress(conversations):
    """Annotate each conversation with ``reply_in_progress``, which ``post_message`` uses
    rather than asking the database again."""
    busy = Message.objects.in_progress().filter(conversation=OuterRef("pk"))
    return conversations.annotate(reply_in_progress=Exists(busy))


def visible_messages(conversation: Conversation) -> list[Message]:
    """Return the user messages, each followed by its latest reply (older regenerations hidden)."""
    messages = list(conversation.messages.select_related("feedback"))
    for message in messages:
        feedback = getattr(message, "feedback", None)
        message.feedback_rating = ("up" if feedback.rating > 0 else "down") if feedback else ""
    latest_reply: dict[int, Message] = {}
    for message in messages:
        if message.role == Message.Role.ASSISTANT and message.reply_to_id is not None:
            latest_reply[message.reply_to_id] = message
    return [
        m
        for m in messages
        if m.role == Message.Role.USER
        or (m.reply_to_id is not None and latest_reply.get(m.reply_to_id) is m)
    ]


def reply_state(message_id: int, *, user_id: int | None = None) -> ReplyState | None:
    query = Message.objects.select_related("conversation").filter(
        pk=message_id, role=Message.Role.ASSISTANT
    )
    if user_id is not None:
        query = query.filter(conversation__user_id=user_id)
    message = query.first()
    return ReplyState.from_message(message, now=timezone.now()) if message else None
