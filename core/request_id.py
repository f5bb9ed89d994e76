"""The id of the request being served, for log lines and AI call records."""

import re
import uuid
from contextvars import ContextVar

_request_id: ContextVar[str] = ContextVar("request_id", default="")
# Accept ids from the proxy only when they look like ids: they end up in logs and headers.
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def current_request_id() -> str:
    return _request_id.get()


def accept_or_generate(header_value: str | None) -> str:
    if header_value and _VALID.match(header_value):
        return header_value
    return uuid.uuid4().hex


def set_request_id(value: str):
    return _request_id.set(value)
