from django.conf import settings


def chat_settings(request):
    return {
        "using_simulator": settings.AI_USING_SIMULATOR,
        "signup_enabled": settings.CHAT_SIGNUP_ENABLED,
    }
