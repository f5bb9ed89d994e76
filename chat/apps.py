from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"

    def ready(self):
        from core.middleware import use_subclass_aware_checks
        from core.shutdown import on_shutdown

        use_subclass_aware_checks()
        on_shutdown(shutdown)


async def shutdown(*, drain_seconds: float, grace_seconds: float) -> None:
    """A stopping server process lets its replies end, then interrupts what is left."""
    from . import runner  # the runner (and the SDK) load only in the server, not in every command

    await runner.shutdown(drain_seconds=drain_seconds, grace_seconds=grace_seconds)
