"""The floor of the project's fixed stack: the least an app of its shape does per reply.

A Django ASGI application served by daphne, with no apps, no middleware, no database, no
session, no authentication: one async view that forwards an OpenAI-compatible streamed chat
completion to the upstream through the official ``openai`` SDK (the request path the app uses,
``core.llm.open_chat_stream``: ``cast_to=object`` and the aiohttp client) and writes each chunk
back as one Server-Sent Event. Nothing is stored, priced, checked or published.

``bench/stream.py --floor`` measures it as a peer of the app, with the same clients as the direct
path (it speaks ``/v1/chat/completions``). Whatever this costs per reply, any app of the
brief's shape (daphne, Django, the SDK) pays too; what the app costs above it is the app's own.
A benchmark tool, never part of the production apps.
"""

import asyncio
import json
import os
import weakref

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-floor-not-a-secret-" + "x" * 40,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    DATABASES={},
    LOGGING_CONFIG=None,
    USE_TZ=True,
)
django.setup()

import openai  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse  # noqa: E402
from django.urls import path  # noqa: E402

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, openai.AsyncOpenAI]" = (
    weakref.WeakKeyDictionary()
)


def client() -> openai.AsyncOpenAI:
    loop = asyncio.get_running_loop()
    if loop not in _clients:
        _clients[loop] = openai.AsyncOpenAI(
            api_key=os.environ["FLOOR_API_KEY"],
            base_url=os.environ["FLOOR_UPSTREAM_URL"],
            max_retries=0,
            http_client=openai.DefaultAioHttpClient(),
        )
    return _clients[loop]


async def models(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"object": "list", "data": []})


async def chat_completions(request: HttpRequest) -> StreamingHttpResponse:
    body = json.loads(request.body)
    stream = await client().post(
        "/chat/completions",
        body=body,
        cast_to=object,
        stream=True,
        stream_cls=openai.AsyncStream[object],
    )

    async def events():
        try:
            async for chunk in stream:
                yield b"data: %s\n\n" % json.dumps(chunk, separators=(",", ":")).encode()
            yield b"data: [DONE]\n\n"
        finally:
            await stream.close()

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    return response


urlpatterns = [
    path("v1/models", models),
    path("v1/chat/completions", chat_completions),
]

application = get_asgi_application()
