"""Plain snapshots of a reply, shared by the runner, the stream views and the JSON API."""

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from .models import Message


@dataclass(frozen=True, slots=True)
class ReplyState:
    id: int
    conversation_id: int
    user_id: int
    status: str
    content: str
    html: str
    model: str
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    tokens_estimated: bool
    latency_ms: int | None
    ttft_ms: int | None
    error_code: str
    error_message: str
    runner_channel: str
    heartbeat_seconds_ago: float | None

    @property
    def in_progress(self) -> bool:
        return self.status in Message.IN_PROGRESS

    @classmethod
    def from_message(cls, message: Message, *, now=None) -> "ReplyState":
        beat = message.heartbeat_at or message.created_at
        return cls(
            id=message.pk,
            conversation_id=message.conversation_id,
            user_id=message.conversation.user_id,
            status=message.status,
            content=message.content,
            html=message.html,
            model=message.model,
            input_tokens=message.input_tokens,
            output_tokens=message.output_tokens,
            total_tokens=message.total_tokens,
            tokens_estimated=message.tokens_estimated,
            latency_ms=message.latency_ms,
            ttft_ms=message.ttft_ms,
            error_code=message.error_code,
            error_message=message.error_message,
            runner_channel=message.runner_channel,
            heartbeat_seconds_ago=(now - beat).total_seconds() if now and beat else None,
        )


# Faults that trying again cannot fix (a bad key, a request the upstream refuses).
# A reached quota resets at a time its message names; the Retry button would only fail again.
NOT_RETRYABLE = frozenset({"upstream_auth", "upstream_rejected", "quota_exceeded"})


def closing_event(message_id: int, reply: Mapping[str, Any]) -> tuple[str, dict]:
    """Return the closing SSE event of a finished reply, ``done`` or ``error``, from its stored
    fields (status, html, model, the token counts, latency_ms, ttft_ms, error_code/_message)."""
    if reply["status"] in (Message.Status.COMPLETED, Message.Status.CANCELLED):
        return "done", {
            "message_id": message_id,
            "status": reply["status"],
            "html": reply["html"],
            "model": reply["model"],
            "usage": {
                "input_tokens": reply["input_tokens"],
                "output_tokens": reply["output_tokens"],
                "total_tokens": reply["total_tokens"],
                "estimated": reply["tokens_estimated"],
            },
            "latency_ms": reply["latency_ms"],
            "ttft_ms": reply["ttft_ms"],
        }
    return "error", {
        "message_id": message_id,
        "status": reply["status"],
        "code": reply["error_code"] or "internal_error",
        "message": reply["error_message"] or "The reply could not be completed.",
        "retryable": reply["error_code"] not in NOT_RETRYABLE,
    }


def final_event(state: ReplyState) -> tuple[str, dict]:
    """The closing SSE event of a finished reply read back as a ``ReplyState``."""
    return closing_event(state.id, {f.name: getattr(state, f.name) for f in fields(state)})
