"""The project's nginx.conf, run by the real nginx in front of a real daphne process."""

import os
import shutil

import httpx
import pytest

from devtools.live import api_client
from devtools.sse import read_stream

from .nginx_process import CONF, NGINX, REPO, nginx_for, trust_front_proxy

pytestmark = pytest.mark.django_db(transaction=True)
if NGINX is None:
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI=true but nginx is not installed: .ci/run must install it")
    pytestmark = [
        pytestmark,
        pytest.mark.skip(reason="nginx not installed (apt-get install nginx)"),
    ]

TOKENS, TPS = 40, 20  # the simulator takes about 2 s to produce this reply


def stream_through(base_url: str, user, *, one_request: bool = False) -> tuple[int, float, str]:
    """Return (delta events, seconds between the first and last delta, final event).

    ``one_request``: the post streams its reply in its own response (``Accept:
    text/event-stream``), through the posts' location."""

    class Server:
        pass

    server = Server()
    server.base_url = base_url
    with api_client(server, user) as client:
        created = client.post("/api/conversations", json={})
        assert created.status_code == 201, created.text
        url = f"/api/conversations/{created.json()['id']}/messages"
        content = {"content": f"Through the proxy [sim:tokens={TOKENS},tps={TPS}]"}
        if one_request:
            result = read_stream(client, url, method="POST", json=content)
            assert result.events[0].event == "accepted"
        else:
            started = client.post(url, json=content).json()
            result = read_stream(client, started["stream_url"])
    deltas = [e for e in result.events if e.event == "delta"]
    spread = deltas[-1].received_at - deltas[0].received_at if deltas else 0.0
    return len(deltas), spread, result.final.event if result.final else ""


def arrives_event_by_event(count: int, spread: float) -> bool:
    """Many delta events, spread over the generation. Not one per token: a reader that fell
    behind (a busy machine: measured 24 of 40 under pytest-xdist at load 12) gets what queued up
    meanwhile as one event (chat/followers.py); a buffering proxy gives them all at the end."""
    generation = (TOKENS - 1) / TPS
    return count >= TOKENS * 0.25 and spread >= generation * 0.7


def test_sse_arrives_event_by_event_through_nginx(app_server, user, tmp_path):
    with nginx_for(app_server.base_url, tmp_path) as base:
        count, spread, final = stream_through(base, user)
        health = httpx.get(f"{base}/healthz")
    assert final == "done"
    assert arrives_event_by_event(count, spread), (count, spread)
    assert health.status_code == 200


def test_a_post_streams_its_reply_event_by_event_through_nginx(app_server, user, tmp_path):
    with nginx_for(app_server.base_url, tmp_path) as base:
        count, spread, final = stream_through(base, user, one_request=True)
    assert final == "done"
    assert arrives_event_by_event(count, spread), (count, spread)


def test_the_posts_location_buffering_fails_the_same_check(app_server, user, tmp_path):
    """The check above can fail: the posts' location with nginx's buffering back (and the
    app's X-Accel-Buffering ignored) delivers the reply in one burst."""
    text = CONF.read_text()
    start = text.index("location ~ ^/api/(conversations")
    end = text.index("location / {")
    block = text[start:end].replace(
        "proxy_buffering off;", "proxy_buffering on; proxy_ignore_headers X-Accel-Buffering;"
    )
    block = block.replace("proxy_http_version 1.1;", "").replace(
        'proxy_set_header Connection "";', ""
    )
    with nginx_for(app_server.base_url, tmp_path, text=text[:start] + block + text[end:]) as base:
        count, spread, final = stream_through(base, user, one_request=True)
    assert final == "done"
    assert not arrives_event_by_event(count, spread), (count, spread)


def buffering_variant(text: str) -> str:
    """The SSE location with nginx's defaults back: buffering on, HTTP/1.0 to the upstream.

    The app's ``X-Accel-Buffering: no`` is ignored too, as behind an inner proxy that strips it.
    (Measured with nginx 1.22: buffering on alone does not burst while the upstream speaks
    HTTP/1.1 chunked, since nginx forwards each chunk; the HTTP/1.0 default does.)
    """
    start = text.index("location ~ ^/api/messages/")
    end = text.index("location / {")
    block = text[start:end]
    for directive in ("proxy_http_version 1.1;", 'proxy_set_header Connection "";'):
        assert directive in block
        block = block.replace(directive, "")
    assert "proxy_buffering off;" in block
    block = block.replace(
        "proxy_buffering off;", "proxy_buffering on; proxy_ignore_headers X-Accel-Buffering;"
    )
    return text[:start] + block + text[end:]


def test_a_buffering_proxy_fails_the_same_check(app_server, user, tmp_path):
    buffered = buffering_variant(CONF.read_text())
    with nginx_for(app_server.base_url, tmp_path, text=buffered) as base:
        count, spread, final = stream_through(base, user)
    assert final == "done"
    # The whole reply arrives in one burst at the end.
    assert not arrives_event_by_event(count, spread), (count, spread)
    assert spread < 0.5


def test_static_files_requests_ids_and_size_limits(app_server, user, tmp_path):
    with nginx_for(app_server.base_url, tmp_path) as base, httpx.Client(base_url=base) as client:
        css = client.get("/static/chat/chat.css")
        assert css.status_code == 200
        assert css.headers["cache-control"] == "no-cache"  # revalidated: no stale release
        again = client.get("/static/chat/chat.css", headers={"If-None-Match": css.headers["etag"]})
        assert again.status_code == 304
        generated = client.get("/accounts/login/")
        assert len(generated.headers["x-request-id"]) == 32  # nginx's $request_id
        too_big = client.post("/api/conversations", content=b"x" * (2 * 1024 * 1024))
        assert too_big.status_code == 413


def test_nginx_sets_request_ids_and_the_scheme_itself(app_server, user, tmp_path):
    """A client's own X-Request-ID and X-Forwarded-Proto never reach the app."""
    with nginx_for(app_server.base_url, tmp_path) as base, httpx.Client(base_url=base) as client:
        page = client.get(
            "/accounts/login/",
            headers={"X-Request-ID": "forged-id-456", "X-Forwarded-Proto": "https"},
        )
        second = client.get("/accounts/login/", headers={"X-Request-ID": "forged-id-456"})
    assert page.status_code == 200
    assert page.headers["x-request-id"] != "forged-id-456"
    assert len(page.headers["x-request-id"]) == 32
    assert second.headers["x-request-id"] not in ("forged-id-456", page.headers["x-request-id"])
    # The app would send HSTS (SECURE_HSTS_SECONDS is on) to a request it believed was https.
    assert "strict-transport-security" not in page.headers
    assert "forged-id-456" not in app_server.log()


def test_a_listed_front_proxy_may_say_https(app_server, user, tmp_path):
    trusting = trust_front_proxy(CONF.read_text(), "127.0.0.1")
    with nginx_for(app_server.base_url, tmp_path, text=trusting) as base:
        page = httpx.get(f"{base}/accounts/login/", headers={"X-Forwarded-Proto": "https"})
    assert page.status_code == 200
    assert "strict-transport-security" in page.headers


def test_readyz_through_nginx_answers_the_private_network_only(app_server, tmp_path):
    with nginx_for(app_server.base_url, tmp_path / "open") as base:
        ready = httpx.get(f"{base}/readyz")
        health = httpx.get(f"{base}/healthz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    assert health.status_code == 200
    # The same file with loopback no longer listed: 127.0.0.1 is then "the public".
    public = CONF.read_text().replace("allow 127.0.0.0/8;", "")
    with nginx_for(app_server.base_url, tmp_path / "public", text=public) as base:
        refused = httpx.get(f"{base}/readyz")
        health = httpx.get(f"{base}/healthz")
    assert refused.status_code == 403
    assert "database" not in refused.text
    assert health.status_code == 200


def test_static_files_are_served_from_a_checkout_in_a_mode_700_directory(app_server, tmp_path):
    """Issue 20: a checkout only its owner may enter (as /root is) still serves /static/.

    Run as root (as CI is), nginx's workers used to run as ``nobody`` and got 403 here.
    """
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)  # whatever the umask
    static = private / "checkout" / "static"
    shutil.copytree(REPO / "static", static)
    for path in (private / "checkout", static, *static.rglob("*")):
        path.chmod(0o700 if path.is_dir() else 0o600)  # readable by the owner alone
    with (
        nginx_for(app_server.base_url, tmp_path / "nginx", static_root=static) as base,
        httpx.Client(base_url=base) as client,
    ):
        css = client.get("/static/chat/chat.css")
    assert css.status_code == 200, css.text
    assert css.text == (REPO / "static" / "chat" / "chat.css").read_text()
