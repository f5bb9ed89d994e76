from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"

    def ready(self):
        from core.middleware import use_subclass_aware_checks

        use_subclass_aware_checks()
