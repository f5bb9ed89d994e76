"""Helpers of scripts/stack_test.py: the compose stack seen from the host (docker, docker compose)
and a chat user talking to it over HTTP through nginx, reading replies over SSE."""

# ruff: noqa: S603, S607 (runs docker and docker compose: the tools under test, from PATH)
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PASSWORD = "stack-test-password-1"  # noqa: S105 (a throw-away user of a throw-away stack)
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from devtools.sse import SSEEvent, iter_sse  # noqa: E402  (the tests' and benches' SSE client)


class CheckFailed(AssertionError):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def ok(message: str) -> None:
    print(f"ok: {message}", flush=True)


@dataclass
class Stack:
    project_dir: Path

    def compose(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run(
            ["docker", "compose", *args],
            cwd=self.project_dir,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        check(result.returncode == 0, f"docker compose {' '.join(args)}: {result.stderr}")
        return result.stdout

    def base_url(self) -> str:
        address = self.compose("port", "nginx", "80").strip()
        return "http://" + address.replace("0.0.0.0", "127.0.0.1")  # noqa: S104

    def ids(self, service: str) -> list[str]:
        return self.compose("ps", "--quiet", service).split()

    def inspect(self, container: str, template: str) -> str:
        return docker("inspect", "--format", template, container).strip()

    def nginx_log(self, since: float) -> list[dict]:
        """nginx's access log lines (JSON) written since the given time."""
        raw = self.compose(
            "logs", "--no-color", "--no-log-prefix", "--since", str(int(since)), "nginx"
        )
        # compose may put terminal control characters before a line: keep from its first brace.
        return [json.loads(line[line.index("{") :]) for line in raw.splitlines() if "{" in line]

    def create_users(self, names: list[str]) -> None:
        code = (
            "from django.contrib.auth import get_user_model\n"
            "User = get_user_model()\n"
            f"for name in {names!r}:\n"
            "    if not User.objects.filter(username=name).exists():\n"
            f"        User.objects.create_user(name, password={PASSWORD!r})\n"
        )
        self.compose("exec", "-T", "web", "python", "manage.py", "shell", "-c", code)

    def wait_healthy(self, container: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.inspect(container, "{{.State.Health.Status}}") == "healthy":
                return
            time.sleep(1)
        raise CheckFailed(f"container {container[:12]} not healthy within {timeout:.0f} s")


def docker(*args: str) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    check(result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}")
    return result.stdout


# --- a chat user over HTTP ---------------------------------------------------------------------


@dataclass
class Reading:
    """What one reader got of one reply, over however many connections it took."""

    text: str = ""
    final: SSEEvent | None = None
    connections: int = 0
    arrivals: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # a gap, a repeat, no end: the check fails
    disconnects: list[str] = field(default_factory=list)  # a connection dropped: reconnect


class ChatUser:
    def __init__(self, base_url: str, username: str):
        self.client = httpx.Client(base_url=base_url, timeout=httpx.Timeout(10, read=90))
        self.last_request_id = ""
        self.username = username

    def login(self) -> None:
        self.client.get("/accounts/login/").raise_for_status()
        response = self.client.post(
            "/accounts/login/",
            data={
                "username": self.username,
                "password": PASSWORD,
                "csrfmiddlewaretoken": self.client.cookies["csrftoken"],
            },
        )
        check(response.status_code == 302, f"login of {self.username}: {response.status_code}")

    def post(self, path: str, body: dict | None = None, **kwargs) -> httpx.Response:
        headers = {"X-CSRFToken": self.client.cookies["csrftoken"], **kwargs.pop("headers", {})}
        return self.client.post(path, json=body or {}, headers=headers, **kwargs)

    def start_reply(self, content: str) -> int:
        """Post a message in a new conversation; return its reply's message id.

        The post's request id (nginx's own: a client's X-Request-ID is not passed on) is kept
        in ``last_request_id``, to find the post in nginx's access log."""
        conversation = self.post("/api/conversations").json()["id"]
        response = self.post(f"/api/conversations/{conversation}/messages", {"content": content})
        check(
            response.status_code == 202,
            f"posting a message: {response.status_code} {response.text}",
        )
        self.last_request_id = response.headers.get("X-Request-ID", "")
        return response.json()["assistant_message"]["id"]

    def message(self, message_id: int) -> dict:
        response = self.client.get(f"/api/messages/{message_id}")
        response.raise_for_status()
        return response.json()

    def read(self, message_id: int, reading: Reading, *, max_deltas: int | None = None) -> bool:
        """Read one connection of the stream from reading's offset; True once a final event came."""
        headers = {"Last-Event-ID": str(len(reading.text))} if reading.text else {}
        reading.connections += 1
        with self.client.stream(
            "GET", f"/api/messages/{message_id}/stream", headers=headers
        ) as response:
            if response.status_code != 200:
                reading.problems.append(f"stream answered {response.status_code}")
                return False
            return _take_events(iter_sse(response), reading, max_deltas)

    def post_and_read(self, content: str, reading: Reading) -> int:
        """Post a message in a new conversation as the chat page does (``Accept:
        text/event-stream``: the reply's events in the post's own response) and read that one
        connection; return the reply's message id."""
        conversation = self.post("/api/conversations").json()["id"]
        reading.connections += 1
        with self.client.stream(
            "POST",
            f"/api/conversations/{conversation}/messages",
            json={"content": content},
            headers={
                "X-CSRFToken": self.client.cookies["csrftoken"],
                "Accept": "text/event-stream",
            },
        ) as response:
            check(response.status_code == 200, f"posting for a stream: {response.status_code}")
            events = (event for event in iter_sse(response) if not isinstance(event, str))
            accepted = next(events, None)
            check(
                accepted is not None and accepted.event == "accepted",
                f"the post's stream began with {accepted}",
            )
            _take_events(events, reading, None)
        return accepted.data["assistant_message"]["id"]

    def follow(self, message_id: int, reading: Reading, *, timeout: float = 240) -> Reading:
        """Read the reply to its end, reconnecting (with Last-Event-ID) whenever a connection ends."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.read(message_id, reading):
                    return reading
            except httpx.HTTPError as exc:
                reading.disconnects.append(f"connection {reading.connections}: {exc!r}")
            time.sleep(0.5)
        reading.problems.append(f"no final event within {timeout:.0f} s")
        return reading


def _take_events(events, reading: Reading, max_deltas: int | None) -> bool:
    """Take a connection's events into ``reading``; True once a final event came.

    Each delta must start exactly where the text so far ends: a repeated or skipped character
    is recorded as a problem.
    """
    deltas = 0
    for event in events:
        if isinstance(event, str):
            continue  # a comment (heartbeat)
        if event.event == "delta":
            start = int(event.id) - len(event.data["text"])
            if start != len(reading.text):
                reading.problems.append(f"delta at {start}, text so far {len(reading.text)}")
            reading.text = reading.text[:start] + event.data["text"]
            reading.arrivals.append(time.monotonic())
            deltas += 1
            if max_deltas is not None and deltas >= max_deltas:
                return False
        elif event.event in ("done", "error"):
            if event.data.get("code") == "stream_interrupted":
                return False  # the connection's replica stops: reconnect and resume
            reading.final = event
            return True
    return False


def expect_complete(user: ChatUser, message_id: int, reading: Reading, what: str) -> None:
    stored = user.message(message_id)
    check(reading.final is not None, f"{what}: no final event ({reading.problems})")
    check(
        reading.final.event == "done" and reading.final.data["status"] == "completed",
        f"{what}: ended with {reading.final.event} {reading.final.data} ({reading.problems})",
    )
    check(stored["status"] == "completed", f"{what}: stored status {stored['status']}")
    check(reading.text == stored["content"], f"{what}: text read differs from the stored text")
    check(not reading.problems, f"{what}: {reading.problems}")
