"""An OpenAI-compatible chat-completions server for the demo, the tests and the benchmarks.

This is a pure ASGI application with no Django imports, so it can be served by any ASGI server
(``manage.py llm_simulator`` serves it with daphne) and its helpers can be tested alone.

Replies are deterministic: the same last user message and model always give the same text,
streamed one token (a word with its trailing whitespace) per chunk at a configurable pace.

Faults are injected per request by a marker anywhere in the last user message, e.g.
``[sim:status=429,retry_after=1]``, or for every request by ``build_app(fault=...)`` with the
same grammar without brackets. A marker replaces the server-wide fault entirely (``[sim:]``
turns it off for one request). The grammar is comma-separated ``key=value`` items and flags:

=================  ========================================================================
``status=CODE``    answer with that HTTP status (400-599) and an OpenAI-style error body
``retry_after=S``  with ``status``: add ``Retry-After: S``
``fail_first=N``   with ``status``: only the first N requests with this last user message fail
``stall``          stream ``after`` tokens, then send nothing until the client goes away
``disconnect``     stream ``after`` tokens, then drop the connection mid-body
``reset``          with ``disconnect``: drop it with a TCP reset instead of a bare close
``malformed``      after ``after`` tokens, send one chunk that is not JSON, then carry on
``after=N``        where ``stall``/``disconnect``/``malformed``/``nul`` strike (default 3)
``no_finish``      never send a finish_reason (nor usage)
``no_usage``       never send usage, even when asked for it
``nul``            put a NUL character (U+0000) inside token ``after`` (PostgreSQL refuses it)
``title``          apply the other items to title requests only (the chat reply is served
                   normally), e.g. ``[sim:title,status=503,fail_first=1]``
``ttft=MS``        per-request time to first token
``tps=N``          per-request tokens per second
``tokens=N``       per-request reply length in tokens
=================  ========================================================================
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import random
import re
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "deepseek-chat")
MODEL_OWNERS = {"deepseek-chat": "deepseek"}
MODEL_CREATED = 1_715_367_049  # a fixed timestamp keeps /v1/models byte-for-byte stable

# A server that can drop a connection mid-response announces this key in scope["extensions"]
# and accepts a message of this type ({"type": ABORT_EXTENSION, "reset": bool}). ASGI itself
# has no way to abort a response, and daphne answers an app exception after the response has
# started by trying to start a second response (which fails) instead of dropping the connection.
ABORT_EXTENSION = "llm_simulator.abort"

MAX_RECORDED_REQUESTS = 500
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_FAILURE_KEYS = 10_000
DEFAULT_FAULT_AFTER = 3

MARKER_RE = re.compile(r"\[sim:([^\]]*)\]")
TOKEN_RE = re.compile(r"\s*\S+\s*")
TITLE_RE = re.compile(r"\btitle\b", re.IGNORECASE)
WORD_RE = re.compile(r"[^\W_](?:[\w'+#.-]*[^\W_])?")

_FLAGS = ("stall", "disconnect", "reset", "malformed", "no_finish", "no_usage", "nul", "title")


class SimulatedDisconnect(RuntimeError):
    """Raised to end a response abruptly on servers without the abort extension.

    Servers such as uvicorn and hypercorn drop the connection when an app raises after the
    response started; under daphne the ``manage.py llm_simulator`` server provides
    ``ABORT_EXTENSION`` instead, so this is never raised there.
    """


# --- Fault grammar --------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One parsed fault spec; the default instance means "behave normally"."""

    status: int | None = None
    retry_after: str | None = None
    fail_first: int | None = None
    stall: bool = False
    disconnect: bool = False
    reset: bool = False
    malformed: bool = False
    no_finish: bool = False
    no_usage: bool = False
    nul: bool = False
    title: bool = False
    after: int = DEFAULT_FAULT_AFTER
    ttft_ms: int | None = None
    tps: float | None = None
    tokens: int | None = None


def _int_value(key: str, raw: str, minimum: int, maximum: int | None = None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{key} must be an integer, not {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ValueError(f"{key} must be {bound}, not {value}")
    return value


def _positive_float(key: str, raw: str, *, allow_zero: bool) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{key} must be a number, not {raw!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{key} must be a {'non-negative' if allow_zero else 'positive'} number")
    return value


def parse_fault(spec: str) -> Fault:
    """Parse ``status=429,retry_after=1``-style specs; raise ValueError naming the problem."""
    values: dict[str, Any] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        key, sep, raw = (s.strip() for s in item.partition("="))
        if key in values:
            raise ValueError(f"{key} is given twice")
        if not sep:
            if key not in _FLAGS:
                raise ValueError(f"unknown fault flag {key!r}")
            values[key] = True
        elif key == "status":
            values[key] = _int_value(key, raw, 400, 599)
        elif key == "retry_after":
            _positive_float(key, raw, allow_zero=True)
            values[key] = raw  # sent verbatim, so "1.5" stays "1.5"
        elif key == "fail_first":
            values[key] = _int_value(key, raw, 1)
        elif key == "after":
            values[key] = _int_value(key, raw, 0)
        elif key == "ttft":
            values["ttft_ms"] = _int_value(key, raw, 0, 600_000)
        elif key == "tps":
            values[key] = _positive_float(key, raw, allow_zero=False)
        elif key == "tokens":
            values[key] = _int_value(key, raw, 1, 100_000)
        elif key in _FLAGS:
            raise ValueError(f"{key} is a flag and takes no value")
        else:
            raise ValueError(f"unknown fault key {key!r}")
    fault = Fault(**values)
    _check_combinations(fault, values)
    return fault


def _check_combinations(fault: Fault, given: dict[str, Any]) -> None:
    if fault.status is None and ("retry_after" in given or "fail_first" in given):
        raise ValueError("retry_after and fail_first need status=CODE")
    if fault.stall and fault.disconnect:
        raise ValueError("stall and disconnect cannot be combined")
    if fault.reset and not fault.disconnect:
        raise ValueError("reset needs disconnect")
    if "after" in given and not (fault.stall or fault.disconnect or fault.malformed or fault.nul):
        raise ValueError("after needs stall, disconnect, malformed or nul")


def extract_marker(text: str) -> tuple[str, str | None]:
    """Split a message into its text without ``[sim:...]`` markers and their joined spec."""
    specs = MARKER_RE.findall(text)
    if not specs:
        return text, None
    cleaned = MARKER_RE.sub(" ", text)
    # Markers leave double spaces behind; tidy them without touching newlines (code blocks).
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned).strip()
    return cleaned, ",".join(specs)


# --- Tokens and reply text ------------------------------------------------------------------


def split_tokens(text: str) -> list[str]:
    """Split text into tokens: words with their trailing whitespace (joining gives the text)."""
    return TOKEN_RE.findall(text)


def message_text(content: Any) -> str:
    """The text of a message's content: a string or a list of ``{"type": "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def estimate_prompt_tokens(messages: Iterable[dict[str, Any]]) -> int:
    """A deterministic stand-in for a tokenizer: 4 characters a token, 4 tokens a message."""
    return sum(math.ceil(len(message_text(m.get("content"))) / 4) + 4 for m in messages)


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message.get("content"))
    return ""


def wants_title(messages: list[dict[str, Any]]) -> bool:
    """The chat app asks for a conversation title with a system message that says "title"."""
    return any(
        m.get("role") in {"system", "developer"} and TITLE_RE.search(message_text(m.get("content")))
        for m in messages
    )


def _rng(user_text: str, model: str) -> random.Random:
    digest = hashlib.sha256(f"{user_text}\x00{model}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))  # noqa: S311 - not for security


_STOPWORDS = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "but", "by", "can", "could", "do", "does",
        "explain", "for", "from", "give", "hello", "hey", "hi", "how", "i", "in", "is", "it",
        "its", "me", "my", "of", "on", "or", "please", "should", "show", "so", "tell", "that",
        "the", "this", "to", "was", "what", "when", "where", "which", "who", "why", "will",
        "with", "would", "you", "your",
    }
)  # fmt: skip

_BULLETS = (
    "**Start small**: get the simplest version working before adding options.",
    "**Measure first**: profile the slow path instead of guessing where time goes.",
    "**Keep it readable**: short functions with clear names age better than clever ones.",
    "**Handle failure**: decide what happens on timeouts, retries and partial results.",
    "**Write a test**: one focused test pins the behaviour you care about most.",
    "**Check the inputs**: validate at the boundary so the core logic can stay simple.",
    "**Mind the limits**: memory, rate limits and quotas shape the design early.",
    "**Log what matters**: record identifiers and timings, never secrets or personal data.",
    "**Automate it**: a script you can rerun beats a checklist you must remember.",
    "**Document the why**: comments should explain decisions, not restate the code.",
    "**Stay consistent**: follow the conventions already used in the codebase.",
    "**Plan the rollout**: ship behind a flag and watch the metrics before going wide.",
)

_CODE_BLOCKS = (
    '```python\ndef summarize(items):\n    return {"count": len(items), "first": items[:1]}\n```',
    "```bash\npython -m venv .venv\n. .venv/bin/activate\npip install -r requirements.txt\n```",
    '```json\n{"retries": 3, "timeout_seconds": 30, "stream": true}\n```',
    "```sql\nSELECT day, count(*) FROM events GROUP BY day ORDER BY day;\n```",
)

# Closing sentences: the long ones fill the budget, the short ones (one of every length from 1
# to 8 tokens) make it come out exact without cutting a sentence in half.
_CLOSING_LONG = (
    "In short, begin with a small working step and check the result before moving on.",
    "Once that works, improve it one change at a time and keep the tests green.",
    "If a step surprises you, reduce it to the smallest example that still shows the problem.",
    "Keep notes on what you tried, because the reasons behind decisions are easy to forget.",
    "When you are unsure between two options, pick the one that is easier to undo.",
    "Review the result with fresh eyes tomorrow, and simplify anything that feels clever.",
)
_CLOSING_SHORT = (
    "Enjoy!",
    "Good luck!",
    "Hope this helps.",
    "Happy to go deeper.",
    "Ask if anything is unclear.",
    "Tell me which part matters most.",
    "I can expand any of these points.",
    "Let me know how it goes for you.",
)


def _quote(user_text: str, max_words: int = 6) -> str:
    words = user_text.replace('"', "'").replace("`", "").split()
    quoted = " ".join(words[:max_words])
    return quoted + ("…" if len(words) > max_words else "")


def _count(parts: list[str]) -> int:
    return len(split_tokens("".join(parts)))


def _closing(rng: random.Random, count: int) -> str:
    """Whole sentences totalling exactly ``count`` tokens."""
    sentences: list[str] = []
    pool = rng.sample(_CLOSING_LONG, k=len(_CLOSING_LONG))
    # Long sentences have at most 16 tokens, and two distinct short ones can make any 1..16.
    while count > 16:
        sentence = pool[len(sentences) % len(pool)]
        sentences.append(sentence)
        count -= len(sentence.split())
    while count > 0:
        unused = [s for s in _CLOSING_SHORT if s not in sentences] or list(_CLOSING_SHORT)
        sentence = max((s for s in unused if len(s.split()) <= count), key=len)
        sentences.append(sentence)
        count -= len(sentence.split())
    return " ".join(sentences)


def generate_reply(user_text: str, model: str, reply_tokens: int) -> str:
    """Readable Markdown of exactly ``reply_tokens`` tokens, seeded by the message and model."""
    rng = _rng(user_text, model)
    quote = _quote(user_text)
    opening = f'You asked about "{quote}". ' if quote else ""
    parts = [opening + "Here is a short, practical overview.\n\n"]
    wanted_bullets = rng.randint(3, 5)
    for bullet in rng.sample(_BULLETS, k=len(_BULLETS)):
        if wanted_bullets == 0:
            break
        if _count([*parts, f"- {bullet}\n"]) <= reply_tokens:
            parts.append(f"- {bullet}\n")
            wanted_bullets -= 1
    code = f"\n{rng.choice(_CODE_BLOCKS)}\n\n"
    if rng.random() < 0.4 and _count([*parts, code]) <= reply_tokens:
        parts.append(code)
    elif parts[-1].endswith("\n") and not parts[-1].endswith("\n\n"):
        parts.append("\n")  # a blank line ends the list before the closing paragraph
    remaining = reply_tokens - _count(parts)
    if remaining > 0:
        parts.append(_closing(rng, remaining))
    # Budgets smaller than the opening line cut it short; everything else fits exactly.
    return "".join(split_tokens("".join(parts))[:reply_tokens]).rstrip()


def generate_title(user_text: str, model: str) -> str:
    """A 2-6 word title taken from the user's own words, without quotes or Markdown."""
    rng = _rng(user_text, model)
    words = WORD_RE.findall(user_text)
    content = [w for w in words if w.lower() not in _STOPWORDS] or words
    chosen = content[: rng.randint(3, 5)]
    for filler in ("Chat", "Notes"):
        if len(chosen) >= 2:
            break
        chosen.append(filler)
    return " ".join(w[:1].upper() + w[1:] for w in chosen)


JUDGE_RE = re.compile(r"\bimpartial judge\b", re.IGNORECASE)
ANSWER_LABEL_RE = re.compile(r"^Answer ([A-Z]):", re.MULTILINE)


def wants_judgement(messages: list[dict[str, Any]]) -> bool:
    """The app's prompt evaluation asks a judge with a system message naming an impartial judge."""
    return any(
        m.get("role") in {"system", "developer"} and JUDGE_RE.search(message_text(m.get("content")))
        for m in messages
    )


def generate_judgement(user_text: str, model: str) -> str:
    """Deterministic JSON scores (1-10) for each "Answer X:" in the judge's request."""
    labels = ANSWER_LABEL_RE.findall(user_text) or ["A", "B"]
    scores = {}
    for label in labels:
        start = user_text.find(f"Answer {label}:")
        answer = user_text[start : start + 400]
        scores[label] = 4 + _rng(answer, model).randint(0, 5)
    best = max(scores, key=lambda k: (scores[k], k))
    return json.dumps({"scores": scores, "reason": f"Answer {best} is the most complete."})


def plan_reply(messages: list[dict[str, Any]], model: str, reply_tokens: int) -> str:
    """The reply text for a request: a title for title requests, otherwise Markdown."""
    user_text, _ = extract_marker(last_user_text(messages))
    if wants_judgement(messages):
        return generate_judgement(user_text, model)
    if wants_title(messages):
        return generate_title(user_text, model)
    return generate_reply(user_text, model, reply_tokens)


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


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _header(scope: Scope, name: bytes) -> bytes | None:
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
    await send({"type": "http.response.body", "body": _dumps(body)})


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
        header = (_header(scope, b"authorization") or b"").decode("latin-1")
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
        tokens = split_tokens(plan_reply(messages, model, fault.tokens or self.reply_tokens))
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
            await event(b"data: " + _dumps(plan.chunk(delta)) + b"\n\n")
        if not fault.no_finish:
            await event(b"data: " + _dumps(plan.chunk({}, plan.finish_reason)) + b"\n\n")
            if plan.include_usage and not fault.no_usage:
                await event(b"data: " + _dumps(plan.usage_chunk()) + b"\n\n")
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
