"""An OpenAI-compatible chat-completions server for the demo, the tests and the benchmarks.

A pure ASGI application with no Django imports, so it can be served by any ASGI server
(``manage.py llm_simulator`` and ``python -m devtools.simulator`` serve it with daphne) and its
helpers can be tested alone. Modules: faults (the grammar below), replies (text and tokens),
protocol (ASGI plumbing, OpenAI bodies), app (the ASGI app), server and cli (daphne, options).

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

from .app import MODELS, Simulator, build_app
from .faults import Fault, extract_marker, parse_fault
from .protocol import ABORT_EXTENSION, BadRequest, SimulatedDisconnect, error_body
from .replies import (
    estimate_prompt_tokens,
    generate_judgement,
    generate_reply,
    generate_title,
    message_text,
    plan_reply,
    split_tokens,
)

__all__ = [
    "ABORT_EXTENSION",
    "MODELS",
    "BadRequest",
    "Fault",
    "SimulatedDisconnect",
    "Simulator",
    "build_app",
    "error_body",
    "estimate_prompt_tokens",
    "extract_marker",
    "generate_judgement",
    "generate_reply",
    "generate_title",
    "message_text",
    "parse_fault",
    "plan_reply",
    "split_tokens",
]
