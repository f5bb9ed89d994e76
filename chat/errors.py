"""The refusals of the chat: each names its HTTP status and a stable code (docs/api.md)."""

from core.errors import AppError


class ChatError(AppError):
    """A request the chat cannot take; ``status`` is the HTTP status to answer with, ``field``
    the request field at fault (if one is)."""


class ReplyInProgress(ChatError):
    status = 409
    code = "reply_in_progress"


class ConversationGone(ChatError):
    status = 404
    code = "not_found"


class NotInProgress(ChatError):
    status = 409
    code = "not_in_progress"
