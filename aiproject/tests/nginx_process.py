"""Test support: the project's nginx/nginx.conf run by the real nginx binary."""

import grp
import os
import pwd
import shutil
from contextlib import contextmanager
from pathlib import Path

from devtools.processes import answers, free_port, managed_process

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
    return workers_as_invoking_user() + conf


FRONT_PROXIES = "geo $realip_remote_addr $from_front_proxy {\n        default 0;\n"


def trust_front_proxy(conf: str, address: str) -> str:
    """Return ``conf`` believing the X-Forwarded-Proto of a TLS terminator at ``address``, as a
    deployment behind a load balancer lists it (docs/deploy.md)."""
    assert FRONT_PROXIES in conf, "nginx.conf no longer lists front proxies in a geo block"
    return conf.replace(FRONT_PROXIES, f"{FRONT_PROXIES}        {address} 1;\n")


def workers_as_invoking_user() -> str:
    """The ``user`` directive that runs the workers as whoever runs the tests (issue 20).

    Started by root, nginx runs its workers as ``nobody``, who cannot read a checkout inside a
    directory only its owner may enter (``/root``, a mode-700 home): static files got 403.
    Started by anyone else, the workers are that user already and nginx ignores the directive
    (with a warning), so it is only added for root.
    """
    if os.geteuid() != 0:
        return ""
    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    return f"user {user} {group};\n"


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


def nginx_for(
    app_base_url: str, workdir: Path, *, text: str | None = None, static_root: Path | None = None
):
    port = free_port()
    upstream = app_base_url.removeprefix("http://")
    conf = render_conf(
        upstream=upstream,
        listen=f"127.0.0.1:{port}",
        static_root=static_root or REPO / "static",
        text=text,
    )
    workdir.mkdir(parents=True, exist_ok=True)
    return run_nginx(conf, workdir, port)
