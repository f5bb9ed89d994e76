"""The LiteLLM proxy as a peer of the app (``bench/stream.py --litellm PATH``): the same simulator
behind it, the same clients in front of it, so the two add-ons compare side by side.

LiteLLM is installed into a venv of its own by ``bash bench/install-litellm.sh`` (``make
bench-litellm-install``) from the pinned ``bench/requirements-litellm.txt``; it never enters
the app's environment. One proxy process (one worker) serves one model name, ``gpt-4o-mini``,
forwarded to the simulator as an OpenAI-compatible upstream; its master key is the bench's API
key, so the direct clients' request works on it unchanged (``/v1/chat/completions``).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from bench.stream_bench.clients import API_KEY, MODEL
from bench.stream_bench.peers import Proxy
from devtools.processes import answers, free_port, managed_process


def config_yaml(simulator_url: str) -> str:
    """The proxy's configuration: one model, the simulator as its OpenAI-compatible upstream."""
    return (
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {simulator_url}\n"
        f"      api_key: {API_KEY}\n"
        "litellm_settings:\n"
        "  drop_params: true\n"
        "  telemetry: false\n"
        "general_settings:\n"
        f"  master_key: {API_KEY}\n"
    )


@contextmanager
def run_litellm(executable: str, simulator_url: str, log_dir: Path):
    """Serve the LiteLLM proxy (``executable``: the ``litellm`` script of its venv) until the
    block ends."""
    port = free_port()
    config = log_dir / "litellm.yaml"
    config.write_text(config_yaml(simulator_url))
    log_path = log_dir / f"litellm-{port}.log"
    base = f"http://127.0.0.1:{port}"
    # Not the app's DATABASE_URL (nor REDIS_URL): the proxy would use them for tables and
    # caches of its own. The bench measures it as a stateless proxy.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")} | {
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        # Its bundled price list, not a download at start.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    args = [executable, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    args += ["--num_workers", "1"]
    with managed_process(
        args,
        log_path=log_path,
        ready=answers(f"{base}/health/liveliness"),
        what="litellm",
        env=env,
        timeout=120,
    ) as process:
        yield Proxy(f"{base}/v1", process.pid, log_path)
