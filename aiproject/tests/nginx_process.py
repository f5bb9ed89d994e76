"""Test support: the project's nginx/nginx.conf run by the real nginx binary."""

import os
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from chat.tests.simulator_process import free_port

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "nginx" / "nginx.conf"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


def render_conf(*, upstream: str, listen: str, static_root: Path, text: str | None = None) -> str:
    """Return nginx.conf with only the upstream, the listen address and the static path replaced."""
    conf = CONF.read_text() if text is None else text
    replacements = {
        "server web:8000 ": f"server {upstream} ",
        "listen 80;": f"listen {listen};",
        "alias /app/staticfiles/;": f"alias {static_root}/;",
    }
    for old, new in replacements.items():
        assert old in conf, f"nginx.conf no longer contains {old!r}"
        conf = conf.replace(old, new)
    return conf


@contextmanager
def run_nginx(conf_text: str, workdir: Path, port: int):
    conf = workdir / "nginx.conf"
    conf.write_text(conf_text)
    log = workdir / "nginx.out"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                NGINX,
                "-p",
                str(workdir),
                "-c",
                str(conf),
                "-e",
                str(workdir / "error.log"),
                "-g",
                f"daemon off; pid {workdir / 'nginx.pid'};",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"nginx exited: {log.read_text()}")
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not start: {log.read_text()}") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def nginx_for(app_base_url: str, workdir: Path, *, text: str | None = None):
    port = free_port()
    upstream = app_base_url.removeprefix("http://")
    conf = render_conf(
        upstream=upstream, listen=f"127.0.0.1:{port}", static_root=REPO / "static", text=text
    )
    return run_nginx(conf, workdir, port)
