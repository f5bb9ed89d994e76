from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"

    def ready(self):
        from django.core import checks

        from aiproject.middleware import check_deploy_middleware

        checks.register(check_deploy_middleware, checks.Tags.security, deploy=True)
