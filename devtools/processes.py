"""Run a server as a child process until it answers, and stop it afterwards (tests, benches)."""

import socket
import subprocess
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]  # the directory holding manage.py


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def answers(url: str) -> Callable[[], bool]:
    """A readiness check: True once ``url`` answers HTTP (any status)."""

    def check() -> bool:
        try:
            httpx.get(url, timeout=1)
        except httpx.TransportError:
            return False
        return True

    return check


@contextmanager
def managed_process(
    args: list[str],
    *,
    log_path: Path,
    ready: Callable[[], bool],
    what: str,
    env: dict[str, str] | None = None,
    timeout: float = 30,
):
    """Start ``args``, wait until ``ready()``, yield the process, and always stop it."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(  # noqa: S603 (a server of this repository, or a tool)
            args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if process.poll() is not None:
                raise RuntimeError(f"{what} exited early:\n{log_path.read_text(errors='replace')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
