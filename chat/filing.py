"""Writes that file a conversation in the sidebar: pin and archive (docs/api.md)."""

from .errors import ChatError
from .models import Conversation

FLAGS = ("pinned", "archived")


def clean_flag(value: object, *, field: str) -> bool:
    if not isinstance(value, bool):
        raise ChatError(f"'{field}' must be true or false.", code="invalid_flag", field=field)
    return value


def file_conversation(*, conversation: Conversation, **flags: object) -> Conversation:
    """Set ``pinned`` and/or ``archived`` (booleans; others refused before anything is saved).
    Neither changes ``updated_at``: filing a conversation does not make it recent."""
    unknown = set(flags) - set(FLAGS)
    if unknown:
        raise TypeError(f"unknown flags: {sorted(unknown)}")
    cleaned = {field: clean_flag(value, field=field) for field, value in flags.items()}
    for field, value in cleaned.items():
        setattr(conversation, field, value)
    if cleaned:
        conversation.save(update_fields=list(cleaned))
    return conversation
