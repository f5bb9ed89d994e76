"""Streams under faults and limits, with real processes: two daphne processes on a Redis that
the test starts itself (and kills and starts again), the simulator over HTTP.

Runs on both database paths (the test database is shared with the served processes); it never
touches the shared Redis.
"""

import re
import socket
import threading
import time

import httpx
import pytest
from django.conf import settings
from django.db import connection, transaction

from chat.models import Message
from devtools.live import api_client, app_env, login_cookies, run_app_server
from devtools.sse import read_stream

from . import services_process
from .test_streaming import start_reply, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

METRICS_TOKEN = "metrics-test-token"
FOLLOWER_CHECK_SECONDS = 2


def _env(simulator, redis, **overrides) -> dict[str, str]:
    settings = {
        "REDIS_URL": redis.url,
        "CHANNEL_LAYER_PREFIX": "outages",
        # Quota counters in the database: this test is about streams, not charges in an outage.
        "QUOTA_BACKEND": "database",
        "SSE_PING_SECONDS": "1",
        "CHAT_FOLLOWER_CHECK_SECONDS": str(FOLLOWER_CHECK_SECONDS),
        "CHAT_MAX_STREAMS_PER_USER": "30",
        "SSE_WRITE_TIMEOUT_SECONDS": "2",
        "AI_STREAM_IDLE_TIMEOUT_SECONDS": "30",
        "AI_MAX_OUTPUT_TOKENS": "40000",
        "METRICS_TOKEN": METRICS_TOKEN,
        # Tests here hold table locks for up to 14 s (a hung state read): no statement timeout
        # may cut them (it has its own tests, core/tests/test_statement_timeout.py).
        "DB_STATEMENT_TIMEOUT_SECONDS": "0",
    }
    return app_env(simulator, **{**settings, **overrides})


@pytest.fixture(scope="module")
def redis_server():
    # No persistence: a restart comes back empty, as after a crash of a cache-only Redis.
    with services_process.redis_server(aof=False) as server:
        yield server


@pytest.fixture(scope="module")
def pair(django_db_setup, django_db_blocker, simulator, redis_server, tmp_path_factory):
    """Processes A and B on the test's own Redis."""
    with django_db_blocker.unblock():
        env = _env(simulator, redis_server)
    with (
        run_app_server(env=env, log_dir=tmp_path_factory.mktemp("daphne-a")) as a,
        run_app_server(env=env, log_dir=tmp_path_factory.mktemp("daphne-b")) as b,
    ):
        yield a, b


def metric(server, name: str, **labels: str) -> float:
    """A counter of the server process, from its /metrics."""
    text = httpx.get(
        f"{server.base_url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    ).text
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    pattern = re.escape(name + (f"{{{wanted}}}" if wanted else "")) + r" ([0-9.e+]+)"
    found = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _delta_ids(result) -> list[int]:
    return [int(e.id) for e in result.events if e.event == "delta"]


@pytest.mark.fault
def test_a_follower_on_another_process_rides_out_a_redis_restart(pair, redis_server, user):
    """Redis killed under a follower on B of a reply generated on A: the follower goes on from
    the saved text (pings meanwhile), goes back to Redis when it returns, and gets the whole
    reply; a follower that opens while Redis is away works too, and so does a new one after."""
    a, b = pair
    outage = {}

    def restart_later():
        time.sleep(2.5)
        redis_server.start()
        outage["back"] = time.monotonic()

    def kill_once(event):
        if "killed" not in outage and int(event.id) > 20:
            redis_server.kill()
            outage["killed"] = time.monotonic()
            threading.Thread(target=restart_later).start()

    late = {}
    with api_client(a, user) as ca, api_client(b, user) as cb, api_client(b, user) as cb2:
        started = start_reply(ca, "Through the outage [sim:tokens=260,tps=40]")
        url = started["stream_url"]

        def open_during_outage():
            wait_for(lambda: "killed" in outage)
            time.sleep(0.3)
            late["result"] = read_stream(cb2, url, timeout=10)

        second = threading.Thread(target=open_during_outage)
        second.start()
        begun = time.monotonic()
        result = read_stream(cb, url, on_delta=kill_once, timeout=10)
        second.join(30)
        assert time.monotonic() - begun < 25
    stored = Message.objects.get(pk=started["assistant_message"]["id"])
    assert result.final.event == "done", result.final
    assert stored.status == Message.Status.COMPLETED
    assert result.text == stored.content
    assert late["result"].final.event == "done"
    assert late["result"].text == stored.content
    # Text kept coming while Redis was away (from the saved text), and so did the pings.
    during = [
        e
        for e in result.events
        if e.event == "delta" and outage["killed"] < e.received_at < outage["back"]
    ]
    assert during, "no text while Redis was away"
    assert "ping" in result.comments

    # Redis is back (empty): a new reply followed from B arrives live again.
    with api_client(a, user) as ca, api_client(b, user) as cb:
        again = start_reply(ca, "After the outage [sim:tokens=80,tps=40]")
        live = read_stream(cb, again["stream_url"], timeout=10)
    assert live.final.event == "done"
    assert live.text == Message.objects.get(pk=again["assistant_message"]["id"]).content
    # Live from A's publisher (at most every 50 ms), not from the saved text alone (every 0.2 s).
    assert len(_delta_ids(live)) >= 12


def test_after_kill_9_readers_keep_what_they_saw(
    pair, redis_server, simulator, user, django_db_blocker, tmp_path
):
    """The runner's process is killed between two saves: the follower saw more text than was
    stored. Its final event's id is its own offset, never below the last delta id, and a
    reconnect with that offset gets the final event without any text again."""
    _, b = pair
    with django_db_blocker.unblock():
        env = _env(simulator, redis_server, CHAT_PERSIST_INTERVAL_SECONDS="1.5")
    killed = {}
    with run_app_server(env=env, log_dir=tmp_path) as doomed:
        with api_client(doomed, user) as cd:
            started = start_reply(cd, "Killed mid-reply [sim:tokens=600,tps=40]")
        message_id = started["assistant_message"]["id"]

        def kill_when_ahead(event):
            # Kill once this reader is well past the saved text (between two saves).
            if killed or int(event.id) < 30:
                return
            saved = len(Message.objects.values_list("content", flat=True).get(pk=message_id))
            if int(event.id) - saved >= 20:
                doomed.process.kill()
                killed["saved"] = saved

        with api_client(b, user) as cb:
            result = read_stream(cb, started["stream_url"], on_delta=kill_when_ahead, timeout=20)
            last_id = _delta_ids(result)[-1]
            again = read_stream(cb, started["stream_url"], last_event_id=str(last_id))
    stored = Message.objects.get(pk=message_id)
    assert killed and last_id - killed["saved"] >= 20
    assert result.final.event == "error" and result.final.data["status"] == "interrupted"
    assert len(stored.content) < last_id  # the crash lost text the reader has
    assert result.text.startswith(stored.content)
    assert int(result.final.id) == last_id
    assert [e.event for e in again.events] == ["error"]
    assert int(again.final.id) == last_id


def test_an_offset_beyond_the_text_is_the_final_events_id(pair, user):
    a, b = pair
    with api_client(a, user) as ca, api_client(b, user) as cb:
        running = start_reply(ca, "Beyond the end [sim:tokens=60,tps=30]")
        url = running["stream_url"]
        local = read_stream(ca, url, last_event_id="100000", timeout=10)
        remote = read_stream(cb, url, last_event_id="100001", timeout=10)
        finished = read_stream(cb, url, last_event_id="100002", timeout=10)
    for result, offset in ((local, 100000), (remote, 100001), (finished, 100002)):
        assert [e.event for e in result.events] == ["done"]
        assert int(result.final.id) == offset


def test_too_many_streams_get_429_before_the_stream_starts(
    simulator, redis_server, user, django_db_blocker, tmp_path
):
    with django_db_blocker.unblock():
        env = _env(simulator, redis_server, CHAT_MAX_STREAMS_PER_USER="3")
    with run_app_server(env=env, log_dir=tmp_path) as a, api_client(a, user) as client:
        started = start_reply(client, "Held open [sim:tokens=120,tps=30]")
        url = started["stream_url"]

        def opens() -> int:
            with client.stream("GET", url) as response:
                return response.status_code

        streams = [client.stream("GET", url) for _ in range(3)]
        opened = [s.__enter__() for s in streams]
        try:
            assert [r.status_code for r in opened] == [200, 200, 200]
            refused = client.get(url)
            assert refused.status_code == 429
            assert refused.headers["content-type"] == "application/json"
            assert refused.json()["error"]["code"] == "too_many_streams"
            # A post that asks for its reply's stream then is answered as without the header:
            # its reply runs, and is read once a stream is closed.
            other = client.post("/api/conversations", json={}).json()["id"]
            posted = client.post(
                f"/api/conversations/{other}/messages",
                json={"content": "No room [sim:tokens=5]"},
                headers={"Accept": "text/event-stream"},
            )
            assert posted.status_code == 202
            assert posted.headers["content-type"] == "application/json"
        finally:
            streams[0].__exit__(None, None, None)
        # A closed stream gives its place back.
        wait_for(lambda: opens() == 200)
        for s in streams[1:]:
            s.__exit__(None, None, None)
        assert read_stream(client, url, timeout=10).final.event == "done"
        late = read_stream(client, posted.json()["stream_url"], timeout=10)
        assert late.final.event == "done" and late.text


def test_followers_of_a_silent_reply_share_few_database_reads(pair, user):
    """20 followers on B of a reply that says nothing for a while on A: B reads the reply's
    state a few times, not 20 followers x once a second (what it was before)."""
    a, b = pair
    with api_client(a, user) as ca:
        started = start_reply(ca, "Thinking... [sim:ttft=9000,tokens=4]")
    cookies = login_cookies(user)
    results: list = []

    def follow():
        with api_client(b, user, cookies=cookies) as client:
            results.append(read_stream(client, started["stream_url"], timeout=20))

    threads = [threading.Thread(target=follow) for _ in range(20)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)  # all of them open and past their first read
    before = metric(b, "aiproject_stream_state_reads_total")
    window = 5.0
    time.sleep(window)
    reads = metric(b, "aiproject_stream_state_reads_total") - before
    for thread in threads:
        thread.join(30)
    assert len(results) == 20
    assert all(r.final.event == "done" for r in results)
    # Each follower checks every FOLLOWER_CHECK_SECONDS; the process shares reads made within
    # a second: at most one a second, whatever the number of followers (20 a second before).
    assert 1 <= reads <= window + 2, reads


def test_a_reader_that_stops_reading_is_cut_off(pair, user):
    """A client that never reads a long, fast reply: once its socket's buffers are full for
    SSE_WRITE_TIMEOUT_SECONDS (2 here), the server closes the connection."""
    a, _ = pair
    with api_client(a, user) as client:
        started = start_reply(client, "A flood [sim:tokens=30000,tps=3000]")
        cookies = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    before = metric(a, "aiproject_sse_stream_ends_total", reason="stalled_reader")
    host, port = a.base_url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    try:
        sock.sendall(
            f"GET {started['stream_url']} HTTP/1.1\r\nHost: {host}\r\n"
            f"Cookie: {cookies}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        # Nothing is read until the server gives up on this reader.
        wait_for(
            lambda: metric(a, "aiproject_sse_stream_ends_total", reason="stalled_reader") > before,
            timeout=30,
        )
        sock.settimeout(10)
        with pytest.raises(ConnectionResetError):
            while sock.recv(65536):
                pass
    finally:
        sock.close()
    # The reply itself is not affected.
    wait_for(
        lambda: (
            Message.objects.get(pk=started["assistant_message"]["id"]).status
            == Message.Status.COMPLETED
        ),
        timeout=30,
    )


@pytest.mark.skipif(
    not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
    reason="a table lock blocks readers on PostgreSQL (SQLite's WAL mode never blocks one)",
)
def test_a_follower_whose_database_read_hangs_ends_with_stream_interrupted(pair, user):
    """The reply's table locked from another connection (as good as a database that stopped
    answering): a follower on B whose state read hangs keeps pinging, then ends with
    stream_interrupted (no id) instead of staying open; a reconnect after gets the reply."""
    a, b = pair
    with api_client(a, user) as ca:
        started = start_reply(ca, "Locked out [sim:ttft=15000,tokens=20]")
    url = started["stream_url"]
    results = {}

    def follow():
        with api_client(b, user, cookies=cookies) as cb:
            results["first"] = read_stream(cb, url, timeout=30)

    cookies = login_cookies(user)
    reads = metric(b, "aiproject_stream_state_reads_total")
    follower = threading.Thread(target=follow)
    follower.start()
    # Open, and past its first state read (not a guessed time: a busy machine opens it late).
    wait_for(lambda: metric(b, "aiproject_stream_state_reads_total") > reads, timeout=20)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {Message._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        locked_at = time.monotonic()
        follower.join(25)
    first = results["first"]
    assert first.final.event == "error"
    assert first.final.data["code"] == "stream_interrupted"
    assert first.final.data["retryable"] is True
    assert first.final.id is None
    # Within STATE_READ_TIMEOUT (10 s) of the read that hung, which started within
    # CHAT_FOLLOWER_CHECK_SECONDS of the lock; pings (every second here) meanwhile.
    # (A bound, not a timing: the reply's own first token is 15 s away.)
    assert first.final.received_at - locked_at < 10 + FOLLOWER_CHECK_SECONDS + 4
    assert first.comments.count("ping") >= 5
    with api_client(b, user) as cb:
        again = read_stream(cb, url, timeout=30)
    # The reply's end as stored ("completed", or "interrupted" when a sweep took the runner's
    # failed saves during the lock for a dead runner: CHAT_STALE_AFTER_SECONDS is 5 here).
    stored = Message.objects.get(pk=started["assistant_message"]["id"])
    assert again.final.data["status"] == stored.status
    assert again.text == stored.content


RECORD_DELTA_IDS = """
window.deltaIds = [];
const PageEventSource = window.EventSource;
window.EventSource = class extends PageEventSource {
  constructor(url, options) {
    super(url, options);
    this.addEventListener("delta", (event) => window.deltaIds.push(event.lastEventId));
  }
};
"""


@pytest.mark.browser
@pytest.mark.skipif(
    not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
    reason="a table lock blocks readers on PostgreSQL (SQLite's WAL mode never blocks one)",
)
def test_the_page_reconnects_with_its_offset_after_stream_interrupted(pair, user):
    """The chat page on B follows a reply of A; B's stream ends with stream_interrupted (its
    state read hung on a lock). The page reconnects by itself with the offset it has, and ends
    showing the reply as stored (before, it showed the interruption as the reply's end)."""
    from .browser import CHROMIUM

    if CHROMIUM is None:
        pytest.skip("Chromium not installed")
    from playwright.sync_api import sync_playwright

    a, b = pair
    with api_client(a, user) as ca:
        started = start_reply(ca, "Half said [sim:stall,after=5]")
    message_id = started["assistant_message"]["id"]
    cookies = login_cookies(user)
    locked = threading.Event()

    def hold_lock():
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {Message._meta.db_table} IN ACCESS EXCLUSIVE MODE")
                locked.set()
                time.sleep(14)
        finally:
            connection.close()

    locker = threading.Thread(target=hold_lock)
    streams = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        context = browser.new_context()
        context.add_cookies(
            [{"name": k, "value": v, "url": b.base_url} for k, v in cookies.items()]
        )
        # Note the id of every delta the page's EventSources get (the page itself is unchanged).
        context.add_init_script(RECORD_DELTA_IDS)
        page = context.new_page()
        page.set_default_timeout(40_000)
        # The reply's stream requests (not static/chat/stream.js).
        page.on("request", lambda r: "/api/messages/" in r.url and streams.append(r))
        page.goto(f"{b.base_url}/c/{started['conversation_id']}/")
        reply = page.locator(f".message[data-message-id='{message_id}']")
        page.wait_for_function(
            "el => el.textContent.trim().length > 0",
            arg=reply.locator(".message-body").element_handle(),
        )
        # The page's stream has sent its first delta (the saved text, with its offset as id).
        page.wait_for_function("() => window.deltaIds.length > 0")
        # The offset the page has reached: the id of its last delta (the shown text is rendered
        # Markdown, whose length differs from the streamed text's).
        shown = int(page.evaluate("() => window.deltaIds[window.deltaIds.length - 1]"))
        locker.start()
        locked.wait(5)
        page.wait_for_selector(".message-notice:has-text('Reconnecting')")
        page.wait_for_function(
            "el => !['pending', 'streaming'].includes(el.dataset.status)",
            arg=reply.element_handle(),
        )
        status = reply.get_attribute("data-status")
        text = reply.locator(".message-body").text_content()
        offsets = [r.all_headers().get("last-event-id") for r in streams]
        browser.close()
    locker.join(20)
    # The runner's final write may have met the lock past DB_STATEMENT_TIMEOUT_SECONDS: it is
    # kept in memory and retried (CHAT_FINISH_RETRY_SECONDS), so it lands soon after the lock.
    stored = wait_for(
        lambda: (m := Message.objects.get(pk=message_id)).status not in Message.IN_PROGRESS and m,
        timeout=30,
    )
    assert offsets[0] is None and len(offsets) >= 2
    assert offsets[1] == str(shown)  # the reconnect carried the offset the page had
    assert status == stored.status
    assert text.strip() == stored.content.strip() or stored.html
