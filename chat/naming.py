"""Writes of a conversation's title: a person's (rename), the model's (after the first
exchange, and again when its owner asks: chat.titles)."""

from .cleaning import clean_generated_title, clean_title
from .errors import ChatError, ConversationGone
from .models import Conversation


def rename_conversation(*, conversation: Conversation, title: object) -> Conversation:
    conversation.title = clean_title(title)
    conversation.title_generated = True  # a person's title is never replaced by the model's
    conversation.save(update_fields=["title", "title_generated"])
    return conversation


def set_generated_title(conversation_id: int, *, title: str, fallback: str) -> bool:
    """Replace the stand-in title with the model's, unless someone renamed it meanwhile."""
    title = clean_generated_title(title)
    if not title:
        return False
    return bool(
        Conversation.objects.filter(
            pk=conversation_id, title=fallback, title_generated=False
        ).update(title=title, title_generated=True)
    )


def store_regenerated_title(*, conversation_id: int, user, title: str) -> Conversation:
    """Give the conversation the model's new title (asked for by its owner: it replaces any
    title, a hand-written one included); ChatError if the answer holds no usable title."""
    title = clean_generated_title(title)
    if not title:
        raise ChatError(
            "The model answered without a usable title; the title is unchanged. Try again.",
            code="title_unusable",
            status=502,
            retryable=True,
        )
    mine = Conversation.objects.filter(pk=conversation_id, user=user)
    mine.update(title=title, title_generated=True)
    conversation = mine.first()
    if conversation is None:  # deleted while the model was asked
        raise ConversationGone("The conversation was deleted.")
    return conversation
