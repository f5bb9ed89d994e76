"""The peers measured beside the app in bench/stream.py, each an OpenAI-compatible server in
front of the same simulator, read by the direct path's clients: the LiteLLM proxy
(``--litellm``, bench/stream_bench/litellm.py) and the stack's floor (``--floor``): daphne serving
``bench/stream_bench/floor_app.py``, Django and the SDK with no app around them."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.stream_bench.clients import API_KEY
from devtools.processes import answers, free_port, managed_process


@dataclass
class Proxy:
    base_url: str  # ends in /v1, like the simulator's
    pid: int
    log_path: Path


@contextmanager
def run_floor(simulator_url: str, log_dir: Path):
    """Serve the floor app with daphne in front of the simulator until the block ends."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = log_dir / f"floor-{port}.log"
    env = {**os.environ, "FLOOR_UPSTREAM_URL": simulator_url, "FLOOR_API_KEY": API_KEY}
    daphne = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    with managed_process(
        [*daphne, "bench.stream_bench.floor_app:application"],
        log_path=log_path,
        ready=answers(f"{base}/v1/models"),
        what="daphne (the floor app)",
        env=env,
    ) as process:
        yield Proxy(f"{base}/v1", process.pid, log_path)


def versus_direct(direct: dict, proxy: dict) -> dict:
    """What the peer adds to the direct path: TTFT (p50, p99) and its CPU per reply."""

    def minus(a, b):
        return None if a is None or b is None else a - b

    n = max(len(proxy["streams"]), 1)
    cpu = proxy.get("simulator_cpu_s")  # direct_round samples the pid it is given: the peer's
    return {
        "added_ttft_ms": {
            k: minus(proxy["ttft_ms"].get(k), direct["ttft_ms"].get(k)) for k in ("p50", "p99")
        },
        "cpu_s_per_reply": None if cpu is None else cpu / n,
        "held": proxy["held"],
    }
