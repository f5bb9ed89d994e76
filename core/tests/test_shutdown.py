"""The shutdown hooks apps register with core (chat/tests/test_drain.py stops real servers)."""

import asyncio

from core import shutdown


def test_every_registered_hook_runs_with_the_drain_and_grace_times(monkeypatch):
    monkeypatch.setattr(shutdown, "_hooks", [])
    calls = []

    async def hook(*, drain_seconds, grace_seconds):
        calls.append((drain_seconds, grace_seconds))

    shutdown.on_shutdown(hook)
    shutdown.on_shutdown(hook)  # registered once
    asyncio.run(shutdown.shut_down(drain_seconds=3, grace_seconds=1))
    assert calls == [(3, 1)]


def test_the_chat_registers_its_replies_drain():
    from chat.apps import shutdown as chat_shutdown

    assert chat_shutdown in shutdown._hooks
