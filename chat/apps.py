from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"

    def ready(self):
        from core.demo import register_seeder
        from core.jobs import register_job
        from core.middleware import use_subclass_aware_checks
        from core.shutdown import on_shutdown

        from . import demo
        from .services import sweep_stale_replies

        use_subclass_aware_checks()
        on_shutdown(shutdown)
        register_job("sweep", lambda: sweep_stale_replies, order=10)
        register_seeder("welcome", demo.seed_welcome, order=10)
        register_seeder("canary", demo.seed_demo_canary, order=30)


async def shutdown(*, drain_seconds: float, grace_seconds: float) -> None:
    """A stopping server process lets its replies end, then interrupts what is left."""
    from . import runner  # the runner (and the SDK) load only in the server, not in every command

    await runner.shutdown(drain_seconds=drain_seconds, grace_seconds=grace_seconds)
