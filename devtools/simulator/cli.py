"""The simulator's command line, shared by ``manage.py llm_simulator`` and
``python -m devtools.simulator`` (which needs no Django settings)."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from .app import Simulator, build_app
from .faults import parse_fault


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="Interface to listen on.")
    parser.add_argument("--port", type=int, default=8001, help="TCP port (0 picks a free one).")
    parser.add_argument(
        "--ttft-ms", type=int, default=300, help="Milliseconds before the first token."
    )
    parser.add_argument("--tps", type=float, default=40.0, help="Tokens per second.")
    parser.add_argument("--reply-tokens", type=int, default=60, help="Tokens in a normal reply.")
    parser.add_argument(
        "--fault",
        default="",
        help="Fault for every request, e.g. 'status=503' (see devtools/simulator/__init__.py).",
    )
    parser.add_argument(
        "--api-key",
        default="",
        help="Accept only this bearer key (default: any non-empty key).",
    )


def app_from_options(options: dict[str, Any]) -> Simulator:
    """Check the options and build the app; raise ValueError naming the first bad option."""
    if options["ttft_ms"] < 0:
        raise ValueError("--ttft-ms must be >= 0")
    if not math.isfinite(options["tps"]) or options["tps"] <= 0:
        raise ValueError("--tps must be a positive number")
    if options["reply_tokens"] < 1:
        raise ValueError("--reply-tokens must be >= 1")
    try:
        parse_fault(options["fault"])
    except ValueError as error:
        raise ValueError(f"--fault: {error}") from None
    if not options["host"].strip():
        raise ValueError("--host must not be empty")
    if not 0 <= options["port"] <= 65535:
        raise ValueError(f"--port must be between 0 and 65535, not {options['port']}")
    return build_app(
        ttft_ms=options["ttft_ms"],
        tokens_per_second=options["tps"],
        reply_tokens=options["reply_tokens"],
        fault=options["fault"],
        api_key=options["api_key"],
    )


def main(argv: list[str] | None = None) -> int:
    from .server import serve  # daphne and Twisted load only when serving

    parser = argparse.ArgumentParser(
        prog="python -m devtools.simulator",
        description="Serve the OpenAI-compatible LLM simulator (devtools/simulator) with daphne.",
    )
    add_options(parser)
    parser.add_argument(
        "-v", "--verbosity", type=int, choices=[0, 1, 2, 3], default=1, help="2 adds an access log."
    )
    options = vars(parser.parse_args(argv))
    try:
        app = app_from_options(options)
    except ValueError as error:
        parser.error(str(error))
    host = options["host"].strip()
    if not serve(app, host=host, port=options["port"], verbosity=options["verbosity"]):
        print(
            f"error: could not listen on {host}:{options['port']} (is the port in use?)",
            file=sys.stderr,
        )
        return 1
    return 0
