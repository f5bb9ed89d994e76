"""Both HTTP transports of the SDK (AI_HTTP_CLIENT) against the simulator over real HTTP.

The app's streaming tests run on the default (aiohttp); here each transport reads a whole
stream and meets the faults whose translation depends on the transport's own exceptions.
"""

import asyncio
import socket

import pytest

from core import llm
from devtools.simulator import split_tokens

pytestmark = pytest.mark.parametrize("transport", ["aiohttp", "httpx"])


@pytest.fixture
def upstream(settings, simulator, transport):
    settings.AI_HTTP_CLIENT = transport
    settings.AI_BASE_URL = simulator.base_url
    settings.AI_API_KEY = "sk-test-simulator-key"
    settings.AI_STREAM_IDLE_TIMEOUT_SECONDS = 0.5
    return simulator


async def _read(content: str) -> tuple[str, list, BaseException | None, type]:
    """Stream a reply; return its text, its chunks, the fault that ended it, the client class."""
    text, chunks, fault = "", [], None
    client = llm.get_client()
    try:
        stream = await llm.open_chat_stream(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": content}],
            temperature=None,
            max_tokens=None,
            include_usage=True,
        )
        async for data in stream:
            chunk = llm.read_chunk(data)
            chunks.append(chunk)
            text += chunk.content
    except Exception as exc:
        fault = llm.translate_fault(exc, text_started=bool(text))
    finally:
        await client.close()
    return text, chunks, fault, type(client._client)


def test_a_whole_stream_with_its_usage(upstream, transport):
    text, chunks, fault, http_client = asyncio.run(_read("Tell me about tea [sim:tokens=30]"))
    assert fault is None
    assert ("aiohttp" in http_client.__name__.lower()) == (transport == "aiohttp")
    assert chunks[-1].usage["completion_tokens"] == 30 == len(split_tokens(text))
    assert any(c.finish_reason == "stop" for c in chunks)


def test_a_refused_connection_is_a_connection_fault_not_a_timeout(upstream, settings):
    # aiohttp's transport reports it as a connect timeout; the user must read the truth.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    settings.AI_BASE_URL = f"http://127.0.0.1:{port}/v1"
    _, _, fault, _ = asyncio.run(_read("Anyone there?"))
    assert fault is not None and fault.code == "upstream_connection"


@pytest.mark.parametrize(
    ("marker", "code"),
    [
        ("[sim:stall,after=3]", "upstream_stalled"),
        ("[sim:disconnect,after=3]", "upstream_connection"),
        ("[sim:status=503]", "upstream_unavailable"),
        ("[sim:status=401]", "upstream_auth"),
    ],
)
def test_faults_translate_alike(upstream, transport, marker, code):
    text, _, fault, _ = asyncio.run(_read(f"Fault please {marker}"))
    assert fault is not None and fault.code == code
    if "after=3" in marker:
        assert len(split_tokens(text)) == 3  # the text before the fault was read
