"""Open streams per user in this process (``CHAT_MAX_STREAMS_PER_USER``).

Counted per process, not across processes: what an open stream uses up is the process's own
(memory, a socket, a place in its event loop), and a count shared through Redis would put
Redis on every stream's open and close, and leave counts behind when a process dies. With P
processes a user can hold at most P times the limit.
"""

import threading

from django.conf import settings

# Taken on the event loop, given back there or from the thread that closes the response.
_lock = threading.Lock()
_open: dict[int, int] = {}


class StreamSlot:
    """One open stream of a user; ``release`` gives it back (once, whoever calls it first)."""

    __slots__ = ("_held", "user_id")

    def __init__(self, user_id: int):
        self.user_id = user_id
        self._held = True

    def release(self) -> None:
        with _lock:
            if not self._held:
                return
            self._held = False
            left = _open.get(self.user_id, 0) - 1
            if left > 0:
                _open[self.user_id] = left
            else:
                _open.pop(self.user_id, None)


def take_slot(user_id: int) -> StreamSlot | None:
    """Count one more open stream of ``user_id``; None when the user already has the most."""
    with _lock:
        held = _open.get(user_id, 0)
        if held >= settings.CHAT_MAX_STREAMS_PER_USER:
            return None
        _open[user_id] = held + 1
    return StreamSlot(user_id)


def open_streams(user_id: int) -> int:
    return _open.get(user_id, 0)
