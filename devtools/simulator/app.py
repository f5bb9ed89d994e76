"""The simulator's ASGI application: models, chat completions (streamed or not), faults, and
the request log the tests read (``/_sim/requests``)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import time
import uuid
from collections import OrderedDict, deque
from typing import Any

from .faults import Fault, extract_marker, parse_fault
from .protocol import (
    BadRequest,
    Completion,
    Receive,
    Scope,
    Send,
    abort_connection,
    dumps,
    error_body,
    read_body,
    request_header,
    run_until_disconnect,
    send_json,
    validate_request,
)
from .replies import estimate_prompt_tokens, last_user_text, plan_reply, split_tokens, wants_title

MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "deepseek-chat")
MODEL_OWNERS = {"deepseek-chat": "deepseek"}
MODEL_CREATED = 1_715_367_049  # a fixed timestamp keeps /v1/models byte-for-byte stable

MAX_RECORDED_REQUESTS = 500
MAX_FAILURE_KEYS = 10_000


class Simulator:
    """The ASGI application; build it with :func:`build_app`."""

    def __init__(
        self,
        *,
        ttft_ms: int,
        tokens_per_second: float,
        reply_tokens: int,
        fault: Fault,
        api_key: str,
    ) -> None:
        self.ttft_ms = ttft_ms
        self.tokens_per_second = tokens_per_second
        self.reply_tokens = reply_tokens
        self.fault = fault
        self._api_key = api_key
        self.recorded: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDED_REQUESTS)
        self._failures: OrderedDict[str, int] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        path = scope["path"].rstrip("/") or "/"
        if path == "/_sim/requests":
            await self._recordings(method, send)
        elif path in {"/v1/chat/completions", "/v1/models"} or path.startswith("/v1/models/"):
            if not await self._authorized(scope, send):
                return
            if path == "/v1/chat/completions":
                await self._chat(method, scope, receive, send)
            else:
                await self._models(method, path, send)
        else:
            await send_json(send, 404, error_body(404, f"Invalid URL ({method} {path})."))

    async def _authorized(self, scope: Scope, send: Send) -> bool:
        # The presented key is compared and dropped: it never reaches a response or a log.
        header = (request_header(scope, b"authorization") or b"").decode("latin-1")
        scheme, _, presented = header.partition(" ")
        presented = presented.strip()
        if scheme.lower() != "bearer" or not presented:
            message = "Missing bearer authentication in header (Authorization: Bearer <key>)."
            await send_json(send, 401, error_body(401, message, code="missing_api_key"))
            return False
        if self._api_key and not hmac.compare_digest(presented.encode(), self._api_key.encode()):
            await send_json(send, 401, error_body(401))
            return False
        return True

    async def _recordings(self, method: str, send: Send) -> None:
        if method == "GET":
            await send_json(send, 200, list(self.recorded))
        elif method == "DELETE":
            cleared = len(self.recorded)
            self.recorded.clear()
            self._failures.clear()
            await send_json(send, 200, {"cleared": cleared})
        else:
            await send_json(send, 405, error_body(405), [(b"allow", b"GET, DELETE")])

    async def _models(self, method: str, path: str, send: Send) -> None:
        if method != "GET":
            await send_json(send, 405, error_body(405), [(b"allow", b"GET")])
            return
        models = [
            {
                "id": name,
                "object": "model",
                "created": MODEL_CREATED,
                "owned_by": MODEL_OWNERS.get(name, "openai"),
            }
            for name in MODELS
        ]
        if path == "/v1/models":
            await send_json(send, 200, {"object": "list", "data": models})
            return
        name = path.removeprefix("/v1/models/")
        found = next((m for m in models if m["id"] == name), None)
        if found is None:
            message = f"The model '{name}' does not exist."
            await send_json(send, 404, error_body(404, message, code="model_not_found"))
        else:
            await send_json(send, 200, found)

    async def _chat(self, method: str, scope: Scope, receive: Receive, send: Send) -> None:
        if method != "POST":
            await send_json(send, 405, error_body(405), [(b"allow", b"POST")])
            return
        try:
            raw = await read_body(receive)
            if raw is None:
                return  # the client left before sending its request
            body = validate_request(json.loads(raw))
        except (ValueError, RecursionError):  # malformed, not UTF-8, nested too deep, ...
            await send_json(send, 400, error_body(400, "The request body is not valid JSON."))
            return
        except BadRequest as error:
            await send_json(send, error.status, error_body(error.status, error.message))
            return
        self._record(body)
        try:
            fault = self._fault_for(body["messages"])
        except ValueError as error:
            await send_json(send, 400, error_body(400, f"Invalid simulator marker: {error}."))
            return
        if fault.status is not None and self._should_fail(fault, body["messages"]):
            headers = [(b"retry-after", fault.retry_after.encode())] if fault.retry_after else []
            message = f"{error_body(fault.status)['error']['message']} (simulated)"
            await send_json(send, fault.status, error_body(fault.status, message), headers)
            return
        plan = self._plan(body, fault)
        if plan.stream:
            await run_until_disconnect(self._stream(plan, scope, send), receive)
        else:
            await run_until_disconnect(self._respond(plan, scope, send), receive)

    def _record(self, body: dict[str, Any]) -> None:
        self.recorded.append(
            {
                "model": body["model"],
                "messages": body["messages"],
                "stream": body.get("stream", False),
                "max_tokens": body.get("max_tokens"),
                "max_completion_tokens": body.get("max_completion_tokens"),
                "temperature": body.get("temperature"),
                "stream_options": body.get("stream_options"),
                "time": time.time(),
            }
        )

    def _fault_for(self, messages: list[dict[str, Any]]) -> Fault:
        _, spec = extract_marker(last_user_text(messages))
        fault = self.fault if spec is None else parse_fault(spec)
        if fault.title and not wants_title(messages):
            return Fault()
        return fault

    def _should_fail(self, fault: Fault, messages: list[dict[str, Any]]) -> bool:
        if fault.fail_first is None:
            return True
        key = hashlib.sha256(last_user_text(messages).encode()).hexdigest()
        seen = self._failures.pop(key, 0) + 1
        self._failures[key] = seen  # re-inserted last: the oldest keys are evicted first
        while len(self._failures) > MAX_FAILURE_KEYS:
            self._failures.popitem(last=False)
        return seen <= fault.fail_first

    def _plan(self, body: dict[str, Any], fault: Fault) -> Completion:
        messages = body["messages"]
        model = body["model"]
        tokens = split_tokens(
            plan_reply(messages, model, fault.tokens or self.reply_tokens, exact=bool(fault.tokens))
        )
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        finish_reason = "stop"
        if limit is not None and limit < len(tokens):
            tokens, finish_reason = tokens[:limit], "length"
        if fault.nul and tokens:
            index = min(fault.after, len(tokens) - 1)
            tokens[index] = tokens[index][:1] + "\x00" + tokens[index][1:]
        stream_options = body.get("stream_options") or {}
        tps = fault.tps or self.tokens_per_second
        ttft_ms = self.ttft_ms if fault.ttft_ms is None else fault.ttft_ms
        return Completion(
            model=model,
            tokens=tokens,
            finish_reason=finish_reason,
            prompt_tokens=estimate_prompt_tokens(messages),
            stream=body.get("stream", False),
            include_usage=bool(stream_options.get("include_usage")),
            fault=fault,
            ttft=ttft_ms / 1000,
            interval=1 / tps,
        )

    async def _stream(self, plan: Completion, scope: Scope, send: Send) -> None:
        headers = [
            (b"content-type", b"text/event-stream"),
            (b"cache-control", b"no-cache"),
            (b"x-request-id", f"req_{uuid.uuid4().hex}".encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        # An empty first write makes the server send the headers now, before the first token.
        await send({"type": "http.response.body", "body": b"", "more_body": True})

        async def event(data: bytes) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": True})

        fault = plan.fault
        for index in range(len(plan.tokens) + 1):
            await plan.wait_for_slot(index)
            if index == plan.fault_index:
                if fault.malformed:
                    await event(b'data: {"id": "' + plan.id.encode() + b'", "choices": [{\n\n')
                if fault.stall:
                    await asyncio.Event().wait()  # until the client leaves and we are cancelled
                if fault.disconnect:
                    await abort_connection(scope, send, reset=fault.reset)
                    return
            if index == len(plan.tokens):
                break
            delta = {"content": plan.tokens[index]}
            if index == 0:
                delta = {"role": "assistant", **delta}
            await event(b"data: " + dumps(plan.chunk(delta)) + b"\n\n")
        if not fault.no_finish:
            await event(b"data: " + dumps(plan.chunk({}, plan.finish_reason)) + b"\n\n")
            if plan.include_usage and not fault.no_usage:
                await event(b"data: " + dumps(plan.usage_chunk()) + b"\n\n")
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    async def _respond(self, plan: Completion, scope: Scope, send: Send) -> None:
        """Answer a non-streaming request once the whole reply would have been generated."""
        fault = plan.fault
        if fault.stall:
            await asyncio.Event().wait()
        if fault.disconnect:
            await plan.wait_for_slot(plan.fault_index or 0)
            await abort_connection(scope, send, reset=fault.reset)
            return
        await plan.wait_for_slot(max(len(plan.tokens) - 1, 0))
        if fault.malformed:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": b'{"id": "' + plan.id.encode()})
            return
        await send_json(send, 200, plan.completion())


def build_app(
    *,
    ttft_ms: int = 300,
    tokens_per_second: float = 40.0,
    reply_tokens: int = 60,
    fault: str = "",
    api_key: str = "",
) -> Simulator:
    """Build the simulator ASGI app; raise ValueError naming any invalid setting."""
    if ttft_ms < 0:
        raise ValueError("ttft_ms must be >= 0")
    if not math.isfinite(tokens_per_second) or tokens_per_second <= 0:
        raise ValueError("tokens_per_second must be a positive number")
    if reply_tokens < 1:
        raise ValueError("reply_tokens must be >= 1")
    return Simulator(
        ttft_ms=ttft_ms,
        tokens_per_second=tokens_per_second,
        reply_tokens=reply_tokens,
        fault=parse_fault(fault),
        api_key=api_key,
    )
