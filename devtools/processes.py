"""Run a server as a child process until it answers, and stop it afterwards (tests, benches)."""

import hashlib
import itertools
import os
import random
import socket
import subprocess
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]  # the directory holding manage.py


# Ports handed out below Linux's ephemeral range (32768 and up): a port the OS picked with bind(0)
# could be picked again by another test process, or taken by an outgoing connection, before the
# server binds it. Each process takes its own block of PORT_BLOCK ports and goes round it: the
# workers of one pytest-xdist run (PYTEST_XDIST_WORKER=gw0, gw1...) neighbouring blocks from one
# that depends on the run (PYTEST_XDIST_TESTRUNUID), any other process a block by its pid.
PORTS_FROM, PORT_BLOCK, PORT_BLOCKS = 20_000, 500, 24


def _port_block() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")
    if worker[2:].isdigit() and run:
        index = int(hashlib.sha256(run.encode()).hexdigest(), 16) + int(worker[2:])
    else:
        index = os.getpid()
    return PORTS_FROM + (index % PORT_BLOCKS) * PORT_BLOCK


# From a random place in the block: another run given the same block starts elsewhere in it.
_first = random.randrange(PORT_BLOCK)  # noqa: S311 (a place in the block, not a secret)
_next_ports = itertools.cycle([*range(_first, PORT_BLOCK), *range(_first)])


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now, from this process's own block of ports."""
    block = _port_block()
    for _ in range(PORT_BLOCK):
        port = block + next(_next_ports)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue  # in use (or still in TIME_WAIT): the next one
            return port
    raise RuntimeError(f"no free port in {block}..{block + PORT_BLOCK - 1}")


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
