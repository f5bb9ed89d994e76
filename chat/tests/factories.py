"""Factories for chat tests: conversations and exchanges (a question and its reply) as stored."""

from datetime import timedelta

from django.utils import timezone

from chat.models import Conversation, Message


def make_conversation(user, **fields) -> Conversation:
    return Conversation.objects.create(user=user, **fields)


def make_reply(
    conversation: Conversation,
    status: str = "streaming",
    *,
    content: str = "partial",
    question: str = "q",
    beat_ago: float = 0.0,
    **fields,
) -> Message:
    """A user's question and the assistant's reply to it in ``status``, its runner's last
    heartbeat ``beat_ago`` seconds ago."""
    asked = Message.objects.create(conversation=conversation, role="user", content=question)
    return Message.objects.create(
        conversation=conversation,
        role="assistant",
        reply_to=asked,
        status=status,
        content=content,
        heartbeat_at=timezone.now() - timedelta(seconds=beat_ago),
        **fields,
    )
