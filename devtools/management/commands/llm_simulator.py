"""``manage.py llm_simulator``: serve the OpenAI-compatible simulator over HTTP with daphne."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from devtools.simulator.cli import add_options, app_from_options


class Command(BaseCommand):
    help = "Serve the OpenAI-compatible LLM simulator (devtools/simulator) for demos and tests."
    # The simulator needs neither the database nor the project's checks to be in shape.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        add_options(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        from devtools.simulator.server import serve

        try:
            app = app_from_options(options)
        except ValueError as error:
            raise CommandError(str(error)) from None
        host, port = options["host"].strip(), options["port"]
        if not serve(app, host=host, port=port, verbosity=options["verbosity"], out=self.stdout):
            raise CommandError(f"could not listen on {host}:{port} (is the port in use?)")
