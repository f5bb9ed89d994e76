"""Test support: the project's nginx/nginx.conf run by the real nginx binary."""

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from chat.tests.processes import answers, managed_process
from chat.tests.simulator_process import free_port

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "nginx" / "nginx.conf"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


def render_conf(*, upstream: str, listen: str, static_root: Path, text: str | None = None) -> str:
    """Return nginx.conf with only the upstream, the listen address and the static path replaced."""
    conf = CONF.read_text() if text is None else text
    replacements = {
        "set $app_upstream web:8000;": f"set $app_upstream {upstream};",
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
    args = [NGINX, "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "error.log")]
    with managed_process(
        [*args, "-g", f"daemon off; pid {workdir / 'nginx.pid'};"],
        log_path=workdir / "nginx.out",
        ready=answers(f"http://127.0.0.1:{port}/healthz"),
        what="nginx",
        timeout=10,
    ):
        yield f"http://127.0.0.1:{port}"


def nginx_for(app_base_url: str, workdir: Path, *, text: str | None = None):
    port = free_port()
    upstream = app_base_url.removeprefix("http://")
    conf = render_conf(
        upstream=upstream, listen=f"127.0.0.1:{port}", static_root=REPO / "static", text=text
    )
    return run_nginx(conf, workdir, port)
