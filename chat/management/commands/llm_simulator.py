"""``manage.py llm_simulator``: serve the OpenAI-compatible simulator over HTTP with daphne."""

import math
import sys
from typing import Any

from daphne.access import AccessLogGenerator
from daphne.endpoints import build_endpoint_description_strings
from daphne.server import Server
from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat.simulator import ABORT_EXTENSION, build_app, parse_fault


def drop_connection(protocol: Any, *, reset: bool) -> None:
    """Close a request's TCP connection mid-response, without ending the HTTP body.

    A bare close (FIN) delivers every byte already written, then the client finds the chunked
    body unterminated; a reset (RST) is harsher and may lose bytes still in flight.
    """
    transport = getattr(getattr(protocol, "channel", None), "transport", None)
    if transport is None:
        return
    if reset:
        transport.abortConnection()
    else:
        transport.loseConnection()


class SimulatorServer(Server):
    """Daphne's server plus the simulator's abort extension.

    ASGI cannot drop a connection, and daphne answers an app exception after the response
    started by trying to start a second response (which fails and leaves the connection open),
    so the simulator asks for the drop with a message of its own that is handled here.
    """

    def create_application(self, protocol: Any, scope: dict[str, Any]) -> Any:
        scope.setdefault("extensions", {})[ABORT_EXTENSION] = {}
        return super().create_application(protocol, scope)

    async def handle_reply(self, protocol: Any, message: dict[str, Any]) -> None:
        if message.get("type") != ABORT_EXTENSION:
            await super().handle_reply(protocol, message)
            return
        details = self.connections.get(protocol)
        if details is not None and not details.get("disconnected"):
            drop_connection(protocol, reset=bool(message.get("reset")))


class Command(BaseCommand):
    help = "Serve the OpenAI-compatible LLM simulator (chat/simulator.py) for demos and tests."
    # The simulator needs neither the database nor the project's checks to be in shape.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Interface to listen on.")
        parser.add_argument("--port", type=int, default=8001, help="TCP port (0 picks a free one).")
        parser.add_argument(
            "--ttft-ms", type=int, default=300, help="Milliseconds before the first token."
        )
        parser.add_argument("--tps", type=float, default=40.0, help="Tokens per second.")
        parser.add_argument(
            "--reply-tokens", type=int, default=60, help="Tokens in a normal reply."
        )
        parser.add_argument(
            "--fault",
            default="",
            help="Fault for every request, e.g. 'status=503' (see chat/simulator.py).",
        )
        parser.add_argument(
            "--api-key",
            default="",
            help="Accept only this bearer key (default: any non-empty key).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host = options["host"].strip()
        port = options["port"]
        app = self._build_app(options)
        if not host:
            raise CommandError("--host must not be empty")
        if not 0 <= port <= 65535:
            raise CommandError(f"--port must be between 0 and 65535, not {port}")

        def announce() -> None:
            # Listening happens before this is called, so the real port is known (for --port 0).
            bound_port = server.listening_addresses[0][1] if server.listening_addresses else port
            shown_host = f"[{host}]" if ":" in host else host
            self.stdout.write(f"LLM simulator listening on http://{shown_host}:{bound_port}/v1")
            self.stdout.flush()

        verbosity = options["verbosity"]
        server = SimulatorServer(
            application=app,
            endpoints=build_endpoint_description_strings(host=host, port=port),
            signal_handlers=True,  # SIGINT and SIGTERM stop the reactor, and run() returns
            ready_callable=announce,
            verbosity=verbosity,
            # The access log has method, path and status only: never the Authorization header.
            action_logger=AccessLogGenerator(sys.stdout) if verbosity >= 2 else None,
        )
        server.run()
        if server.abort_start:
            raise CommandError(f"could not listen on {host}:{port} (is the port in use?)")
        self.stdout.write("LLM simulator stopped.")

    @staticmethod
    def _build_app(options: dict[str, Any]) -> Any:
        if options["ttft_ms"] < 0:
            raise CommandError("--ttft-ms must be >= 0")
        if not math.isfinite(options["tps"]) or options["tps"] <= 0:
            raise CommandError("--tps must be a positive number")
        if options["reply_tokens"] < 1:
            raise CommandError("--reply-tokens must be >= 1")
        try:
            parse_fault(options["fault"])
        except ValueError as error:
            raise CommandError(f"--fault: {error}") from None
        return build_app(
            ttft_ms=options["ttft_ms"],
            tokens_per_second=options["tps"],
            reply_tokens=options["reply_tokens"],
            fault=options["fault"],
            api_key=options["api_key"],
        )
