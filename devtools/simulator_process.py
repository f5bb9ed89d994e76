"""Run the LLM simulator (``python -m devtools.simulator``) as a real server process on a free
port, for the tests and the benchmarks."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx2

from devtools.processes import REPO, free_port

START_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 10.0
# The simulator wants some bearer key; this one only ever reaches the local test process.
PROBE_HEADERS = {"Authorization": "Bearer simulator-probe"}


@dataclass
class RunningSimulator:
    port: int
    host: str = "127.0.0.1"
    log: Any = None  # the file receiving the process's stdout and stderr
    pid: int | None = None

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def requests(self) -> list[dict[str, Any]]:
        """The chat requests the simulator recorded, oldest first."""
        response = httpx2.get(f"{self.root_url}/_sim/requests", timeout=5)
        response.raise_for_status()
        return response.json()

    def clear(self) -> None:
        """Forget the recorded requests (and the fail_first counters)."""
        httpx2.delete(f"{self.root_url}/_sim/requests", timeout=5).raise_for_status()

    def output(self) -> str:
        """Everything the process printed so far."""
        # pread leaves the shared file offset alone, so the child's next write cannot land on
        # top of what it wrote before.
        fd = self.log.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")


def _wait_until_ready(simulator: RunningSimulator, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            httpx2.get(f"{simulator.base_url}/models", headers=PROBE_HEADERS, timeout=1)
            return  # any HTTP answer means the server is up
        except httpx2.TransportError:
            time.sleep(0.05)
    _stop(process)
    log = simulator.output()
    state = f"exited with {process.returncode}" if process.returncode is not None else "hung"
    raise RuntimeError(
        f"The LLM simulator on port {simulator.port} did not answer within "
        f"{START_TIMEOUT_SECONDS:.0f} s ({state}). Its output:\n{log}"
    )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def run_simulator(*args: str, env: dict[str, str] | None = None) -> Iterator[RunningSimulator]:
    """Start the simulator with extra command-line ``args``; stop it on exit.

    ``env`` adds to (and overrides) the current environment of the child process.
    """
    port = free_port()
    # No Django: the module starts faster than ``manage.py llm_simulator`` (same options).
    command = [sys.executable, "-m", "devtools.simulator", "--port", str(port), *args]
    # A file, not a pipe: nobody reads the output while tests run, and a full pipe would block
    # the server.
    with tempfile.TemporaryFile() as log:
        simulator = RunningSimulator(port=port, log=log)
        process = subprocess.Popen(  # noqa: S603 (this repository's simulator)
            command,
            cwd=REPO,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        simulator.pid = process.pid
        try:
            _wait_until_ready(simulator, process)
            yield simulator
        finally:
            _stop(process)
