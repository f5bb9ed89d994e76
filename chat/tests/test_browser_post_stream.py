"""The page reads a reply from the response of the post that started it (one request), and
resumes it from ``stream_url`` when that connection is cut, in a real Chromium."""

import re
import socket
import threading
from contextlib import contextmanager, suppress

from chat.models import Message

from .browser import ASSISTANT, BROWSER_MARKS, log_in, send

pytestmark = BROWSER_MARKS

STREAM_GET = re.compile(r"/api/messages/\d+/stream")


def test_the_page_reads_its_reply_from_the_post_alone(page, app_server, user):
    requests = []
    page.on("request", lambda r: "/api/" in r.url and requests.append(r))
    log_in(page, app_server.base_url)
    send(page, "One request [sim:tokens=60,tps=60]")
    page.wait_for_selector(f"{ASSISTANT}[data-status=completed] .message-stats")
    # The id before the click: the new reply can replace the old one before a read after it.
    old_id = page.locator(ASSISTANT).last.get_attribute("data-message-id")
    page.click(f"{ASSISTANT} >> nth=-1 >> .regenerate-button")
    page.wait_for_function(
        "id => { const r = [...document.querySelectorAll('.message[data-role=assistant]')].pop();"
        " return r && r.dataset.messageId !== id && r.dataset.status === 'completed'; }",
        arg=old_id,
    )
    posts = [
        r for r in requests if r.method == "POST" and re.search(r"/(messages|regenerate)$", r.url)
    ]
    assert len(posts) == 2
    assert all("text/event-stream" in r.all_headers()["accept"] for r in posts)
    assert not [r.url for r in requests if STREAM_GET.search(r.url)]
    last = page.locator(ASSISTANT).last
    stored = Message.objects.get(pk=last.get_attribute("data-message-id"))
    assert last.get_attribute("data-markdown") == stored.content


class CuttingProxy:
    """A TCP proxy in front of the app that cuts the connection carrying a message's post once
    ``after`` deltas of its response went through (both sockets closed, as a network would)."""

    def __init__(self, target_port: int, after: int):
        self.target_port = target_port
        self.after = after
        self.cut = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]

    def serve(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            state = {"post": False, "deltas": 0}
            threading.Thread(target=self._up, args=(client, upstream, state), daemon=True).start()
            threading.Thread(target=self._down, args=(upstream, client, state), daemon=True).start()

    def _up(self, client, upstream, state):
        with _closing(client, upstream):
            while data := client.recv(65536):
                if not self.cut.is_set() and re.search(
                    rb"^POST /api/conversations/\d+/messages ", data, re.M
                ):
                    state["post"] = True
                upstream.sendall(data)

    def _down(self, upstream, client, state):
        with _closing(client, upstream):
            while data := upstream.recv(65536):
                client.sendall(data)
                if state["post"]:
                    state["deltas"] += data.count(b"event: delta")
                    if state["deltas"] >= self.after:
                        self.cut.set()
                        return

    def close(self):
        self.listener.close()


@contextmanager
def _closing(*sockets):
    try:
        yield
    except OSError:
        pass
    finally:
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def test_a_cut_post_stream_is_resumed_from_its_offset(page, app_server, user):
    proxy = CuttingProxy(int(app_server.base_url.rpartition(":")[2]), after=5)
    threading.Thread(target=proxy.serve, daemon=True).start()
    base = f"http://127.0.0.1:{proxy.port}"
    streams = []
    page.on("request", lambda r: STREAM_GET.search(r.url) and streams.append(r.url))
    try:
        log_in(page, base)
        send(page, "Cut me off [sim:tokens=120,tps=40]")
        page.wait_for_selector(f"{ASSISTANT}[data-status=completed] .message-stats", timeout=30_000)
    finally:
        proxy.close()
    assert proxy.cut.is_set()
    reply = page.locator(ASSISTANT).last
    stored = Message.objects.get(pk=reply.get_attribute("data-message-id"))
    # The page asked for the rest from where its post's response stopped, and lost nothing.
    assert len(streams) == 1 and int(streams[0].rpartition("offset=")[2]) > 0
    assert reply.get_attribute("data-markdown") == stored.content
    assert page.locator(".error-line").count() == 0
