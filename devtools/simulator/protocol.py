"""The simulator's HTTP plumbing over raw ASGI, and the shape of OpenAI's chat-completion bodies."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from .faults import Fault

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# A server that can drop a connection mid-response announces this key in scope["extensions"]
# and accepts a message of this type ({"type": ABORT_EXTENSION, "reset": bool}). ASGI itself
# has no way to abort a response, and daphne answers an app exception after the response has
# started by trying to start a second response (which fails) instead of dropping the connection.
ABORT_EXTENSION = "llm_simulator.abort"

MAX_BODY_BYTES = 8 * 1024 * 1024


class SimulatedDisconnect(RuntimeError):
    """Raised to end a response abruptly on servers without the abort extension.

    Servers such as uvicorn and hypercorn drop the connection when an app raises after the
    response started; under daphne the ``manage.py llm_simulator`` server provides
    ``ABORT_EXTENSION`` instead, so this is never raised there.
    """


# --- HTTP plumbing --------------------------------------------------------------------------


class BadRequest(Exception):
    """A request the simulator refuses, answered with an OpenAI-style error."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


_ERROR_KINDS = {
    400: ("invalid_request_error", None, "Bad request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("permission_error", None, "You are not allowed to use this resource."),
    404: ("invalid_request_error", "not_found", "Not found."),
    405: ("invalid_request_error", None, "Method not allowed."),
    413: ("invalid_request_error", None, "Request body too large."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", "service_unavailable", "The server is overloaded. Try again later."),
}


def error_body(status: int, message: str | None = None, code: str | None = None) -> dict:
    kind, default_code, default_message = _ERROR_KINDS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None, "Error.")
    )
    return {
        "error": {
            "message": message or default_message,
            "type": kind,
            "param": None,
            "code": code if code is not None else default_code,
        }
    }


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def request_header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value
    return None


async def send_json(
    send: Send, status: int, body: Any, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"x-request-id", f"req_{uuid.uuid4().hex}".encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": dumps(body)})


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None if the client left first."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BadRequest("The request body is too large.", status=413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def run_until_disconnect(work: Coroutine[Any, Any, None], receive: Receive) -> None:
    """Run ``work``, cancelling it when the client goes away so idle streams cost nothing."""
    work_task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(wait_for_disconnect(receive))
    try:
        await asyncio.wait({work_task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not work_task.done():
            work_task.cancel()
            await asyncio.gather(work_task, return_exceptions=True)
    if not work_task.cancelled():
        work_task.result()  # re-raises the app's own errors


async def abort_connection(scope: Scope, send: Send, *, reset: bool) -> None:
    if ABORT_EXTENSION in (scope.get("extensions") or {}):
        await send({"type": ABORT_EXTENSION, "reset": reset})
        return
    raise SimulatedDisconnect("simulated disconnect")


# --- Chat completions -----------------------------------------------------------------------


@dataclass
class Completion:
    """Everything needed to answer one chat-completions request."""

    model: str
    tokens: list[str]
    finish_reason: str
    prompt_tokens: int
    stream: bool
    include_usage: bool
    fault: Fault
    ttft: float
    interval: float
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex[:24]}")
    created: int = field(default_factory=lambda: int(time.time()))
    started: float = field(default_factory=lambda: asyncio.get_running_loop().time())

    @property
    def usage(self) -> dict[str, int]:
        completion = len(self.tokens)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }

    @property
    def fault_index(self) -> int | None:
        """Index of the token before which stall/disconnect/malformed strike, if any."""
        fault = self.fault
        if fault.stall or fault.disconnect or fault.malformed:
            return min(fault.after, len(self.tokens))
        return None

    async def wait_for_slot(self, index: int) -> None:
        """Sleep until token ``index`` is due; a fixed schedule keeps long streams from drifting."""
        due = self.started + self.ttft + index * self.interval
        delay = due - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_simulator",
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if self.include_usage:
            chunk["usage"] = None  # as OpenAI does: every chunk but the last says "no usage yet"
        return chunk

    def usage_chunk(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_simulator",
            "choices": [],
            "usage": self.usage,
        }

    def completion(self) -> dict[str, Any]:
        no_finish = self.fault.no_finish
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_simulator",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "".join(self.tokens),
                        "refusal": None,
                    },
                    "logprobs": None,
                    "finish_reason": None if no_finish else self.finish_reason,
                }
            ],
        }
        if not (no_finish or self.fault.no_usage):
            body["usage"] = self.usage
        return body


def _optional_int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"'{key}' must be a positive integer.")
    return value


def validate_request(body: Any) -> dict[str, Any]:
    """Check the parts of an OpenAI request the simulator relies on; raise BadRequest."""
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array.")
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise BadRequest("Every message must be an object with a 'role'.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise BadRequest("You must provide a model parameter.")
    if not isinstance(body.get("stream", False), bool):
        raise BadRequest("'stream' must be a boolean.")
    temperature = body.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool) or not isinstance(temperature, int | float)
    ):
        raise BadRequest("'temperature' must be a number.")
    stream_options = body.get("stream_options")
    if stream_options is not None and not isinstance(stream_options, dict):
        raise BadRequest("'stream_options' must be an object.")
    _optional_int(body, "max_tokens")
    _optional_int(body, "max_completion_tokens")
    return body
