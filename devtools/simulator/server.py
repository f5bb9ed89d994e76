"""Serve the simulator with daphne, which can drop a connection mid-response on request."""

from __future__ import annotations

import sys
from typing import IO, Any

from daphne.access import AccessLogGenerator
from daphne.endpoints import build_endpoint_description_strings
from daphne.server import Server

from .protocol import ABORT_EXTENSION


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


def serve(app: Any, *, host: str, port: int, verbosity: int = 1, out: IO[str] = sys.stdout) -> bool:
    """Serve ``app`` until SIGINT or SIGTERM; return False if it could not listen at all."""

    def announce() -> None:
        # Listening happens before this is called, so the real port is known (for --port 0).
        bound_port = server.listening_addresses[0][1] if server.listening_addresses else port
        shown_host = f"[{host}]" if ":" in host else host
        out.write(f"LLM simulator listening on http://{shown_host}:{bound_port}/v1\n")
        out.flush()

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
        return False
    out.write("LLM simulator stopped.\n")
    out.flush()
    return True
