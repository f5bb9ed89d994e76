"""A rolling replacement behind the project's nginx.conf, without Docker: nginx in front of
daphne processes A and B (sharing the database and Redis) and C, the new one; A gets SIGTERM
while replies stream. Every reply reaches its reader complete, exactly once, and nginx answers
no 5xx to any request (core/draining.py, docs/deploy.md)."""

import contextlib
import json
import random
import re
import signal
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest
from django.conf import settings

from chat.models import Message
from chat.tests.test_streaming import start_reply, wait_for
from devtools.live import CSRF_TOKEN, api_client, app_env, login_cookies, run_app_server
from devtools.processes import free_port
from devtools.sse import iter_sse

from .nginx_process import CONF, NGINX, REPO, render_conf, run_nginx

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(NGINX is None, reason="nginx not installed (apt-get install nginx)"),
    pytest.mark.skipif(
        not settings.REDIS_URL, reason="readers follow replies across processes: needs REDIS_URL"
    ),
]

REPLIES = 20


def with_replicas(addresses: list[str]) -> dict:
    """render_conf's arguments for nginx.conf with these replicas in place of compose's `web`."""
    text = CONF.read_text()
    if "set $app_upstream web:8000;" in text:
        # Resolved at request time (Docker's DNS gives one address per replica): a group of
        # the same name takes precedence over the resolver, with nginx's implicit defaults.
        group = "".join(f"        server {address};\n" for address in addresses)
        text = text.replace(
            "    server {\n", f"    upstream replicas {{\n{group}    }}\n\n    server {{\n", 1
        )
        return {"upstream": "replicas", "text": text}
    # An upstream block naming `web`: one server line per replica, with its options.
    options = " max_fails=3 fail_timeout=10s;\n        server "
    return {"upstream": options.join(addresses), "text": text}


@dataclass
class Reader:
    """An SSE reader as the browser's EventSource is: it reads incrementally and, when a
    connection drops before the final event, reconnects with Last-Event-ID."""

    url: str
    text: str = ""
    final: dict | None = None
    connections: int = 0
    refused: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def run(self, client: httpx.Client, deadline: float, first: httpx.Client | None = None):
        """Read through ``client`` (the first connection through ``first``, if given)."""
        while self.final is None and time.monotonic() < deadline:
            headers = {"Accept": "text/event-stream"}
            if self.text:
                headers["Last-Event-ID"] = str(len(self.text))
            self.connections += 1
            try:
                through = first if first is not None and self.connections == 1 else client
                with through.stream("GET", self.url, headers=headers) as response:
                    if response.status_code != 200:
                        response.read()
                        self.refused.append(response.status_code)
                        time.sleep(0.5)
                        continue
                    for item in iter_sse(response):
                        if isinstance(item, str):
                            continue
                        self._take(item)
                        if self.final is not None:
                            return
            except httpx.TransportError:
                pass
            time.sleep(0.2)  # EventSource waits `retry` (2 s here); shorter keeps the test quick

    def _take(self, event) -> None:
        if event.event == "delta":
            # Each id is the offset after the delta: anything else is a gap or a repeat.
            if int(event.id) != len(self.text) + len(event.data["text"]):
                self.problems.append(f"delta id {event.id} after offset {len(self.text)}")
            self.text += event.data["text"]
        elif event.event in ("done", "error"):
            self.final = {"event": event.event, **event.data}


def test_a_rolling_replacement_loses_no_reply(simulator, user, tmp_path):
    # One user reads all 20 replies (and reconnects): above the per-process stream limit.
    env = app_env(simulator, CHAT_DRAIN_SECONDS="60", CHAT_MAX_STREAMS_PER_USER="100")
    port_c = free_port()
    with contextlib.ExitStack() as stack:
        a = stack.enter_context(run_app_server(env=env, log_dir=tmp_path))
        b = stack.enter_context(run_app_server(env=env, log_dir=tmp_path))
        # C is the new release, already ready when the deploy stops A (as scripts/deploy.sh
        # does): starting it mid-test took up to 7 s on a busy machine, longer than the replies.
        stack.enter_context(run_app_server(env=env, log_dir=tmp_path, port=port_c))
        addresses = [a.base_url.removeprefix("http://"), b.base_url.removeprefix("http://")]
        nginx_port = free_port()
        conf = render_conf(
            **with_replicas([*addresses, f"127.0.0.1:{port_c}"]),
            listen=f"127.0.0.1:{nginx_port}",
            static_root=REPO / "static",
        )
        (tmp_path / "nginx").mkdir()
        base = stack.enter_context(run_nginx(conf, tmp_path / "nginx", nginx_port))
        cookies = login_cookies(user)

        def client() -> httpx.Client:
            return httpx.Client(
                base_url=base, cookies=cookies, headers={"X-CSRFToken": CSRF_TOKEN}, timeout=30
            )

        def post(poster: httpx.Client, content: str) -> tuple[int, str]:
            conversation = poster.post("/api/conversations", json={})
            assert conversation.status_code == 201, conversation.text
            started = poster.post(
                f"/api/conversations/{conversation.json()['id']}/messages",
                json={"content": content},
            )
            assert started.status_code == 202, started.text
            body = started.json()
            return body["assistant_message"]["id"], body["stream_url"]

        readers: dict[int, Reader] = {}
        threads = []
        deadline = time.monotonic() + 90

        def read(message_id: int, url: str, first: httpx.Client | None = None) -> None:
            readers[message_id] = reader = Reader(url)
            thread = threading.Thread(
                target=reader.run,
                args=(stack.enter_context(client()), deadline, first),
                daemon=True,
            )
            thread.start()
            threads.append(thread)

        poster = stack.enter_context(client())
        # A reader connected to A that follows a reply generated on B, longer than any of A's:
        # A's exit cuts its connection, and it resumes through nginx with Last-Event-ID. It
        # lasts 40 s: A's exit comes after 20 posts and A's drain, which took more than 20 s
        # on a slow machine (the reply had ended by then, and nothing was cut).
        on_b = stack.enter_context(api_client(b, user))
        on_a = stack.enter_context(api_client(a, user))
        followed = start_reply(on_b, "Generated on B [sim:tokens=800,tps=20]")
        followed_id = followed["assistant_message"]["id"]
        read(followed_id, followed["stream_url"], first=on_a)
        rng = random.Random(14)
        for n in range(REPLIES):
            # 3-6 s each at 20 tokens per second.
            tokens = rng.randint(60, 120)
            read(*post(poster, f"Deploy reply {n} [sim:tokens={tokens},tps=20]"))
        long_replies = [message_id for message_id in readers if message_id != followed_id]

        in_progress = Message.objects.filter(pk__in=long_replies, status="streaming").count()
        a.process.send_signal(signal.SIGTERM)
        wait_for(lambda: "SIGTERM: draining" in a.log(), timeout=10)

        # New work during the drain: nginx moves what A refuses to B or C.
        for n in range(8):
            read(*post(poster, f"During the deploy {n} [sim:tokens=20,tps=40]"))
        for thread in threads:
            thread.join(max(1.0, deadline - time.monotonic()))
        a.process.wait(timeout=30)  # exits once its last reply ended, well before 60 s
        drained_log = a.log()

    access = [
        json.loads(line)
        for line in (tmp_path / "nginx" / "nginx.out").read_text().splitlines()
        if line.startswith("{")
    ]
    assert access, "nginx logged no requests"
    errors = [entry for entry in access if entry["status"] >= 500]
    assert errors == []
    address_a = addresses[0]
    retried = [e for e in access if e["upstream"].startswith(f"{address_a}, ")]
    stored = {m.pk: m for m in Message.objects.filter(pk__in=readers)}
    for message_id, reader in readers.items():
        assert reader.problems == [], (message_id, reader.problems)
        assert reader.final is not None, (message_id, reader)
        assert reader.final["event"] == "done" and reader.final["status"] == "completed"
        assert stored[message_id].status == Message.Status.COMPLETED
        assert reader.text == stored[message_id].content
        assert reader.refused == []
    # A had replies streaming when it was told to stop, and its readers got them to the end.
    assert in_progress > 0
    drained = re.search(r"draining: (\d+) reply\(s\) in progress", drained_log)
    assert drained and int(drained[1]) > 0, drained_log
    assert "interrupting" not in drained_log
    assert readers[followed_id].connections >= 2  # cut by A's exit, resumed elsewhere
    reconnects = sum(reader.connections - 1 for reader in readers.values())
    print(
        f"replies in progress at SIGTERM: {in_progress}; requests retried on another replica "
        f"after A's 503: {len(retried)}; readers' reconnects: {reconnects}"
    )
