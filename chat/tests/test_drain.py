"""A server process that is asked to stop drains: its replies run to their end, new work goes
elsewhere, and it exits as soon as nothing is left (core/draining.py, chat.runner.shutdown)."""

import signal
import threading
import time

import httpx
import pytest

from analytics.models import AICall
from chat.models import Message
from devtools.live import api_client, app_env, run_app_server
from devtools.sse import read_stream

from .test_streaming import start_reply, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def follow_in_background(client: httpx.Client, url: str, results: dict, key) -> threading.Thread:
    def follow():
        results[key] = read_stream(client, url, timeout=60)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    return thread


def wait_until_draining(server) -> httpx.Response:
    """Return /readyz once it says draining (the signal is handled by the server's loop)."""
    found = []

    def draining() -> bool:
        response = httpx.get(f"{server.base_url}/readyz", timeout=5)
        found[:] = [response]
        return response.status_code == 503

    wait_for(draining, timeout=10)
    return found[0]


def test_a_stopping_server_finishes_its_replies_and_refuses_new_work(simulator, user, tmp_path):
    env = app_env(simulator, CHAT_DRAIN_SECONDS="60")
    with run_app_server(env=env, log_dir=tmp_path) as server:
        clients = [api_client(server, user) for _ in range(3)]
        done_before = api_client(server, user)
        earlier = start_reply(done_before, "Done already [sim:tokens=3]")
        assert read_stream(done_before, earlier["stream_url"]).final.event == "done"
        started = [
            start_reply(client, f"Long reply {n} [sim:tokens=100,tps=20]")
            for n, client in enumerate(clients)
        ]
        results: dict = {}
        threads = []
        for n, (client, reply) in enumerate(zip(clients, started, strict=True)):
            threads.append(follow_in_background(client, reply["stream_url"], results, n))
        # Stop once every reply is streaming (5 s each at 20 tokens per second).
        wait_for(
            lambda: all(
                Message.objects.get(pk=r["assistant_message"]["id"]).content for r in started
            ),
            timeout=10,
        )
        server.process.send_signal(signal.SIGTERM)

        # Readiness turns 503 at once; the port still takes new connections meanwhile.
        ready = wait_until_draining(server)
        # A stream opened now of a reply generated here is served to its end.
        late: dict = {}
        clients.append(api_client(server, user))
        threads.append(follow_in_background(clients[-1], started[-1]["stream_url"], late, 0))
        assert ready.json() == {"status": "draining"}
        assert httpx.get(f"{server.base_url}/healthz", timeout=5).status_code == 200
        refused = done_before.post(
            f"/api/conversations/{earlier['conversation_id']}/messages", json={"content": "More"}
        )
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "draining"
        assert refused.headers["Retry-After"] == "2"
        regenerate = done_before.post(
            f"/api/messages/{earlier['assistant_message']['id']}/regenerate"
        )
        assert (regenerate.status_code, regenerate.json()["error"]["code"]) == (503, "draining")
        # A stream of a reply not generated here is refused (nginx opens it on another replica).
        other = done_before.get(earlier["stream_url"])
        assert (other.status_code, other.json()["error"]["code"]) == (503, "draining")

        for thread in threads:
            thread.join(30)
        server.process.wait(timeout=15)  # far less than the drain time: nothing was left
        for client in [*clients, done_before]:
            client.close()
    assert server.process.returncode == 0
    for n, reply in enumerate(started):
        stored = Message.objects.get(pk=reply["assistant_message"]["id"])
        result = results[n]
        assert result.final.event == "done" and result.final.data["status"] == "completed"
        assert stored.status == Message.Status.COMPLETED
        assert result.text == stored.content and stored.output_tokens == 100
    assert late[0].status == 200 and late[0].final.data["status"] == "completed"
    assert late[0].text == Message.objects.get(pk=started[-1]["assistant_message"]["id"]).content
    log = server.log()
    assert "draining: 3 reply(s) in progress" in log
    assert "Service Unavailable" not in log  # expected refusals, not errors in Django's log


def test_a_reply_longer_than_the_drain_time_is_interrupted_with_its_usage(
    simulator, user, tmp_path
):
    # The short reply is still running at the signal (a busy machine starting it late included)
    # and ends well within the drain; the long one cannot.
    env = app_env(simulator, CHAT_DRAIN_SECONDS="8")
    with run_app_server(env=env, log_dir=tmp_path) as server, api_client(server, user) as client:
        long = start_reply(client, "Too long [sim:tokens=400,tps=20]")  # 20 s
        short = start_reply(client, "Short [sim:tokens=80,tps=20]")  # 4 s, within the drain
        results: dict = {}
        threads = [
            follow_in_background(api_client(server, user), r["stream_url"], results, key)
            for key, r in (("short", short), ("long", long))
        ]
        short_reply = Message.objects.filter(pk=short["assistant_message"]["id"])
        wait_for(lambda: short_reply.get().content, timeout=10)
        server.process.send_signal(signal.SIGTERM)
        assert short_reply.get().status == Message.Status.STREAMING  # still running then
        for thread in threads:
            thread.join(30)
        server.process.wait(timeout=20)
    assert results["short"].final.data["status"] == "completed"
    final = results["long"].final
    assert (final.event, final.data["status"], final.data["code"]) == (
        "error",
        "interrupted",
        "interrupted",
    )
    reply = Message.objects.get(pk=long["assistant_message"]["id"])
    assert reply.status == Message.Status.INTERRUPTED
    assert reply.content == results["long"].text and len(reply.content) > 0
    call = AICall.objects.get(message=reply)
    assert (call.status, call.error_code, call.tokens_estimated) == ("error", "interrupted", True)
    assert call.output_tokens > 0 and reply.output_tokens == call.output_tokens


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
def test_a_second_signal_ends_the_drain_at_once(simulator, user, tmp_path, second):
    env = app_env(simulator, CHAT_DRAIN_SECONDS="60")
    with run_app_server(env=env, log_dir=tmp_path) as server, api_client(server, user) as client:
        started = start_reply(client, "Very long [sim:tokens=2000,tps=20]")  # 100 s
        results: dict = {}
        thread = follow_in_background(api_client(server, user), started["stream_url"], results, 0)
        wait_for(
            lambda: Message.objects.get(pk=started["assistant_message"]["id"]).content,
            timeout=10,
        )
        server.process.send_signal(signal.SIGINT)  # as Ctrl-C does
        wait_until_draining(server)
        time.sleep(0.5)
        assert server.process.poll() is None  # still draining
        server.process.send_signal(second)
        server.process.wait(timeout=15)
        thread.join(10)
    assert results[0].final.data["status"] == "interrupted"
    reply = Message.objects.get(pk=started["assistant_message"]["id"])
    assert reply.status == Message.Status.INTERRUPTED
    assert AICall.objects.get(message=reply).error_code == "interrupted"
    assert "interrupting the replies still running" in server.log()
