"""The app on several daphne processes behind the shipped nginx/nginx.conf (``bench/stream.py
--processes K``), as compose runs it with ``WEB_REPLICAS=K`` (docs/deploy.md).

nginx.conf finds the replicas through Docker's DNS (``set $app_upstream web:8000``); here the
same variable names an ``upstream`` group of the K local processes instead, which nginx also
balances round-robin. Everything else is the shipped file, run by the real nginx binary
(``aiproject/tests/nginx_process.py``, the tests' helper).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from aiproject.tests.nginx_process import NGINX, REPO, render_conf, run_nginx
from devtools.processes import free_port

GROUP = "bench_app"


def conf_for(ports: list[int], listen_port: int, *, affinity: bool = False) -> str:
    """nginx.conf with its upstream variable naming a group of the local app processes.

    ``affinity``: every request of one client connection goes to the same process (``hash
    $connection``), so a reply's stream is read where it is written; the bench's clients are one
    keep-alive connection per user, so this is what a session-cookie affinity does in
    production (docs/capacity.md)."""
    conf = render_conf(
        upstream=GROUP, listen=f"127.0.0.1:{listen_port}", static_root=REPO / "static"
    )
    servers = "".join(f"        server 127.0.0.1:{port};\n" for port in ports)
    hashing = "        hash $connection consistent;\n" if affinity else ""
    group = (
        f"    upstream {GROUP} {{\n{hashing}{servers}        keepalive 64;\n    }}\n\n    server {{"
    )
    assert conf.count("\n    server {") == 1, "nginx.conf no longer has one server block"
    return conf.replace("    server {", group, 1)


@contextmanager
def run_front(ports: list[int], workdir: Path, *, affinity: bool = False):
    """Serve nginx in front of the app processes on ``ports``; yield its base URL."""
    if NGINX is None:
        raise SystemExit("--processes needs the nginx binary (apt-get install nginx-light)")
    listen = free_port()
    front = workdir / "nginx"
    front.mkdir(exist_ok=True)
    with run_nginx(conf_for(ports, listen, affinity=affinity), front, listen) as base_url:
        yield base_url
