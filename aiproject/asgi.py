"""ASGI entry point: HTTP (including the SSE streams) goes to Django through Channels' router."""

import os
from typing import Any

from core.handlers import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiproject.settings")

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402  (needs Django set up first)
from django.conf import settings  # noqa: E402

http_app: Any = django_asgi_app
if settings.SERVE_STATIC:
    # Development and tests only; in production nginx serves /static/ from STATIC_ROOT.
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    http_app = ASGIStaticFilesHandler(django_asgi_app)

# A reader that stops reading an event stream is cut off (SSE_WRITE_TIMEOUT_SECONDS).
from core.write_timeout import WriteTimeout  # noqa: E402

application = ProtocolTypeRouter({"http": WriteTimeout(http_app)})


from core.shutdown import drain_on_stop_signals  # noqa: E402

# Apps add what a stop waits for (the chat: its replies in progress) in their ready().
drain_on_stop_signals()


def _freeze_startup_objects() -> None:
    """Keep the objects of start-up (Django, the SDK, the views: about 160,000) out of the
    garbage collector's full collections, which otherwise walk them all on the event loop.

    Measured under bench/stream.py (N=1, 50, 50, 200): full collections while serving took
    about 155 ms each without this and about 80 ms with it, every stream stalled meanwhile.
    """
    import gc

    from django.urls import get_resolver

    get_resolver().url_patterns  # import the views now, so they are frozen too  # noqa: B018
    gc.collect()
    gc.freeze()


_freeze_startup_objects()
