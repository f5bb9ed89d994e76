"""Checks of the running docker compose stack, made from the host through the nginx container only.

scripts/ci-containers.sh (the container section of .ci/run) builds the images, brings the stack up
in a deploy directory (as on a server) and runs:

    python scripts/stack_test.py --project-dir DIR smoke
    python scripts/stack_test.py --project-dir DIR deploy --ssh "ssh -p PORT -i KEY root@127.0.0.1" \
        --new-tag TAG --broken-tag TAG

`smoke`: /healthz, /readyz, a static file, log in, a reply read incrementally over SSE, a stream
resumed with Last-Event-ID on a new connection, the monitor sweeping a reply whose replica was
killed, app containers not running as root, and no traceback in `docker compose logs`.

`deploy`: 20 long replies are started, scripts/deploy.sh replaces the web replicas over ssh with
a new tag while their readers follow them (reconnecting with Last-Event-ID when a connection
ends), then every reader must have the reply's full text exactly once, and nginx must have
answered no 5xx meanwhile; then a tag whose readiness never passes must be rolled back with the
old replicas serving throughout.

Any failed check ends the run with exit status 1 and says what was expected.
"""

# ruff: noqa: S603 (runs docker, docker compose and ssh: the tools under test, from PATH)
import argparse
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from stack_client import (
    REPO,
    ChatUser,
    CheckFailed,
    Reading,
    Stack,
    check,
    docker,
    expect_complete,
    ok,
)

# --- smoke --------------------------------------------------------------------------------------


def smoke(stack: Stack) -> None:
    base = stack.base_url()
    started = time.time()
    anonymous = httpx.Client(base_url=base, timeout=10)
    check(anonymous.get("/healthz").json() == {"status": "ok"}, "/healthz")
    ready = anonymous.get("/readyz")
    check(ready.status_code == 200, f"/readyz: {ready.status_code} {ready.text}")
    ok(f"/healthz and /readyz through nginx at {base}")

    static = anonymous.get("/static/chat/chat.js")
    check(static.status_code == 200, f"static file: {static.status_code}")
    check(static.content == (REPO / "static/chat/chat.js").read_bytes(), "static file content")
    check(not static.headers.get("x-request-id"), "static file came from the app, not nginx")
    ok("a static file served by nginx")

    stack.create_users(["smoke"])
    user = ChatUser(base, "smoke")
    user.login()
    ok("logged in")

    # 40 tokens at 20 a second: the events must arrive spread over about two seconds.
    message_id = user.start_reply("Hello from the stack test [sim:tokens=40,tps=20]")
    reading = user.follow(message_id, Reading(), timeout=60)
    expect_complete(user, message_id, reading, "a reply read over SSE")
    spread = reading.arrivals[-1] - reading.arrivals[0]
    check(
        len(reading.arrivals) >= 10 and spread > 1.0, f"deltas arrived in a burst ({spread:.2f} s)"
    )
    ok(f"a reply streamed incrementally ({len(reading.arrivals)} deltas over {spread:.1f} s)")

    # The chat page's flow: the reply's events in the post's own response, through the posts'
    # location of nginx (unbuffered), with no request to the reply's stream_url.
    reading = Reading()
    message_id = user.post_and_read("The page's way [sim:tokens=40,tps=20]", reading)
    expect_complete(user, message_id, reading, "a reply read from its post")
    spread = reading.arrivals[-1] - reading.arrivals[0]
    check(
        len(reading.arrivals) >= 10 and spread > 1.0,
        f"the post's deltas arrived in a burst ({spread:.2f} s)",
    )
    stream_gets = [
        line
        for line in stack.nginx_log(started)
        if line["uri"] == f"/api/messages/{message_id}/stream"
    ]
    check(not stream_gets, f"the post's reply was also read from stream_url: {stream_gets}")
    ok(f"a reply streamed in its post's response ({len(reading.arrivals)} deltas, {spread:.1f} s)")

    # Resume: read a few deltas, drop the connection, reconnect with Last-Event-ID.
    upstreams = set()
    for attempt in range(4):
        message_id = user.start_reply(f"Resume me {attempt} [sim:tokens=60,tps=20]")
        reading = Reading()
        user.read(message_id, reading, max_deltas=5)
        check(reading.final is None and reading.text, "the first connection got no text")
        user.follow(message_id, reading, timeout=60)
        expect_complete(user, message_id, reading, "a resumed reply")
        check(reading.connections == 2, f"resumed reply took {reading.connections} connections")
        streams = [
            line
            for line in stack.nginx_log(started)
            if line["uri"] == f"/api/messages/{message_id}/stream"
        ]
        upstreams.update(line["upstream"] for line in streams)
        if len({line["upstream"] for line in streams}) == 2:
            break
    ok(f"streams resumed with Last-Event-ID; stream requests went to {sorted(upstreams)}")
    check(len(upstreams) >= 2, "every stream went to one replica: are both serving?")

    check_monitor_sweeps(stack, user, started)
    check_outbound_tls(stack)
    check_not_root(stack)
    check_logs_clean(stack)


def check_monitor_sweeps(stack: Stack, user: ChatUser, started: float) -> None:
    """Kill the replica writing a reply; the monitor must mark the reply interrupted."""
    monitor = stack.ids("monitor")
    check(len(monitor) == 1, "the monitor container is not running")
    health = stack.inspect(monitor[0], "{{.State.Health.Status}}")
    check(health == "healthy", f"the monitor container is {health}")
    message_id = user.start_reply("Sweep me [sim:tokens=400,tps=10]")
    request_id = user.last_request_id
    time.sleep(1)
    post = [line for line in stack.nginx_log(started) if line["request_id"] == request_id]
    check(len(post) == 1, f"nginx logged {len(post)} lines for request {request_id}")
    address = post[0]["upstream"].split(":")[0]
    writer = next(
        web
        for web in stack.ids("web")
        if address
        in stack.inspect(web, "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}")
    )
    docker("kill", "--signal", "KILL", writer)
    # No stream is opened meanwhile (a stream request would also mark it): only the monitor can.
    deadline = time.monotonic() + 60
    while (status := user.message(message_id)["status"]) in ("pending", "streaming"):
        check(time.monotonic() < deadline, "the monitor did not sweep the orphaned reply in 60 s")
        time.sleep(1)
    check(status == "interrupted", f"the orphaned reply ended {status}")
    check(
        "sweep: 1" in stack.compose("logs", "--no-color", "monitor"),
        "no sweep in the monitor's log",
    )
    ok(f"the monitor swept the reply of a killed replica ({status})")
    docker("start", writer)
    stack.wait_healthy(writer)


# The app's three HTTP clients: urllib (webhooks), aiohttp and httpx2 (the AI API transports).
OUTBOUND_TLS = """
import asyncio, sys, urllib.request
import aiohttp, httpx2
url = sys.argv[1]
assert urllib.request.urlopen(url, timeout=20).status == 200
assert httpx2.get(url, timeout=20).status_code == 200
async def main():
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
asyncio.run(main())
"""


def check_outbound_tls(stack: Stack) -> None:
    """Behind a TLS-intercepting proxy, the app's outbound calls trust its CA (EXTRA_CA_CERTS)."""
    url = os.environ.get("STACK_TEST_TLS_URL")
    if not url:
        print("skipped: outbound TLS (no STACK_TEST_TLS_URL)", flush=True)
        return
    docker("exec", stack.ids("web")[0], "python", "-c", OUTBOUND_TLS, url)
    ok(f"the app's HTTP clients reach {url} through the proxy (its CA is trusted)")


def check_not_root(stack: Stack) -> None:
    for service in ("web", "monitor"):
        for container in stack.ids(service):
            uid = docker("exec", container, "id", "-u").strip()
            check(uid != "0", f"{service} container {container[:12]} runs as root")
    ok("the app containers run as a non-root user")


def check_logs_clean(stack: Stack) -> None:
    logs = stack.compose("logs", "--no-color")
    bad = [line for line in logs.splitlines() if "Traceback" in line]
    check(not bad, "tracebacks in docker compose logs:\n" + "\n".join(bad[:5]))
    ok("no traceback in docker compose logs")


# --- rolling deploy ------------------------------------------------------------------------------


def run_deploy(
    stack: Stack, ssh: str, tag: str, *, ready_timeout: int
) -> subprocess.CompletedProcess:
    """scripts/deploy.sh as the deploy workflow runs it: over ssh, in the deploy directory."""
    app_image = stack.inspect(stack.ids("web")[0], "{{.Config.Image}}").rsplit(":", 1)[0]
    remote = (
        f"cd {shlex.quote(str(stack.project_dir))} && APP_IMAGE={shlex.quote(app_image)} "
        f"READY_TIMEOUT_SECONDS={ready_timeout} bash deploy.sh {shlex.quote(tag)}"
    )
    started = time.monotonic()
    result = subprocess.run(
        [*shlex.split(ssh), remote],
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    print(f"deploy.sh {tag}: exit {result.returncode} after {time.monotonic() - started:.0f} s")
    print(result.stderr[-3000:], flush=True)
    return result


def deploy_test(stack: Stack, ssh: str, new_tag: str, broken_tag: str) -> None:
    """Both parts run, whatever the first one found; then every failure is reported."""
    failures = []
    for part in (rolling_deploy, failed_deploy):
        try:
            part(stack, ssh, new_tag, broken_tag)
        except CheckFailed as exc:
            print(f"FAILED: {exc}", file=sys.stderr, flush=True)
            failures.append(part.__name__)
    check_logs_clean(stack)
    check(not failures, f"failed: {', '.join(failures)}")


def rolling_deploy(stack: Stack, ssh: str, new_tag: str, broken_tag: str) -> None:
    base = stack.base_url()
    names = [f"reader{n}" for n in range(20)]
    stack.create_users(names)
    old_web = set(stack.ids("web"))
    started = time.time()

    # 20 replies of 300 tokens at 10 a second (30 s each), each with its own reader.
    results: dict[str, tuple[ChatUser, int, Reading]] = {}

    def reader(name: str) -> None:
        user = ChatUser(base, name)
        user.login()
        message_id = user.start_reply(f"Long reply for {name} [sim:tokens=300,tps=10]")
        reading = Reading()
        results[name] = (user, message_id, reading)
        user.follow(message_id, reading, timeout=240)

    threads = [threading.Thread(target=reader, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    # Deploy once every reply is streaming (20 logins take a while: password hashing).
    deadline = time.monotonic() + 120
    while len(results) < 20 or not all(reading.text for _, _, reading in results.values()):
        check(time.monotonic() < deadline, f"only {len(results)} of 20 replies started")
        time.sleep(0.5)

    deployed = run_deploy(stack, ssh, new_tag, ready_timeout=120)
    for thread in threads:
        thread.join(timeout=300)
    check(deployed.returncode == 0, f"deploy.sh {new_tag} failed")
    new_web = set(stack.ids("web"))
    check(not (new_web & old_web), "an old replica is still running after the deploy")
    for container in new_web:
        image = stack.inspect(container, "{{.Config.Image}}")
        check(image.endswith(f":{new_tag}"), f"replica {container[:12]} runs {image}")
    ok(f"deploy.sh replaced the replicas with {new_tag}")

    failures = []
    for name, (user, message_id, reading) in sorted(results.items()):
        try:
            expect_complete(user, message_id, reading, f"reply of {name}")
        except CheckFailed as exc:
            failures.append(str(exc))
    errors = [line for line in stack.nginx_log(started) if line["status"] >= 500]
    if errors:
        failures.append(f"nginx answered {len(errors)} 5xx during the deploy, e.g. {errors[:3]}")
    check(not failures, "\n".join(failures))
    reconnected = sum(reading.connections > 1 for _, _, reading in results.values())
    ok(f"all 20 replies complete, full text exactly once ({reconnected} readers reconnected)")
    ok("nginx answered no 5xx during the deploy")


def failed_deploy(stack: Stack, ssh: str, new_tag: str, broken_tag: str) -> None:
    """A tag whose readiness never passes: rolled back, the replicas of new_tag serve throughout."""
    base = stack.base_url()
    new_web = set(stack.ids("web"))
    started = time.time()
    user = ChatUser(base, "reader0")
    user.login()
    message_id = user.start_reply("During the broken deploy [sim:tokens=200,tps=10]")
    reading = Reading()
    follower = threading.Thread(target=user.follow, args=(message_id, reading))
    follower.start()
    broken = run_deploy(stack, ssh, broken_tag, ready_timeout=30)
    follower.join(timeout=120)
    check(broken.returncode == 1, f"deploy.sh {broken_tag} exited {broken.returncode}, not 1")
    check("ROLLING BACK" in broken.stderr, "deploy.sh did not say it rolled back")
    check(set(stack.ids("web")) == new_web, "the replicas changed during the failed deploy")
    check(httpx.get(f"{base}/readyz").status_code == 200, "/readyz after the rollback")
    expect_complete(user, message_id, reading, "a reply during the failed deploy")
    errors = [line for line in stack.nginx_log(started) if line["status"] >= 500]
    check(not errors, f"nginx answered 5xx during the failed deploy, e.g. {errors[:3]}")
    deployed_tag = (stack.project_dir / ".deployed-tag").read_text().strip()
    check(deployed_tag == new_tag, f".deployed-tag is {deployed_tag}")
    ok(f"the broken tag {broken_tag} was rolled back; {new_tag} served throughout")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project-dir", type=Path, required=True)
    parser.add_argument("what", choices=["smoke", "deploy"])
    parser.add_argument("--ssh", default=os.environ.get("STACK_TEST_SSH", ""))
    parser.add_argument("--new-tag")
    parser.add_argument("--broken-tag")
    args = parser.parse_args()
    stack = Stack(args.project_dir.resolve())
    try:
        if args.what == "smoke":
            smoke(stack)
        else:
            deploy_test(stack, args.ssh, args.new_tag, args.broken_tag)
    except CheckFailed as exc:
        print(f"FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
