"""The deployment files: linted by real linters, and the deploy script's rollback exercised."""

import http.server
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120, **kwargs)


def test_dockerfile_passes_hadolint():
    result = run(str(BIN / "hadolint"), "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_pass_actionlint():
    result = run(str(BIN / "actionlint"), "-no-color")
    assert result.returncode == 0, result.stdout + result.stderr
    workflows = {p.name for p in (REPO / ".github" / "workflows").glob("*.yml")}
    assert {"ci.yml", "deploy.yml"} <= workflows


def test_compose_file_matches_the_compose_specification():
    result = run(
        str(BIN / "check-jsonschema"),
        "--builtin-schema",
        "vendor.compose-spec",
        "docker-compose.yml",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image():
    ignored = (REPO / ".dockerignore").read_text().split()
    for pattern in (".env", ".env.*", ".git", ".venv"):
        assert pattern in ignored
    assert "!.env.example" in ignored


FAKE_DOCKER = """#!/usr/bin/env bash
# Stands in for the docker CLI: records calls; `up` makes APP_TAG the running version.
echo "$APP_TAG $*" >> "$FAKE_STATE/calls"
if [ "$1 $2" = "compose up" ]; then echo "$APP_TAG" > "$FAKE_STATE/running"; fi
exit 0
"""


@pytest.fixture
def fake_server(tmp_path):
    """A /readyz that is ready only while the 'running' tag is a good one."""
    state = tmp_path / "state"
    state.mkdir()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            running = (
                (state / "running").read_text().strip() if (state / "running").exists() else ""
            )
            self.send_response(200 if running.startswith("good") else 503)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
    workdir = tmp_path / "srv"
    workdir.mkdir()
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_STATE": str(state),
        "APP_IMAGE": "ghcr.io/example/aiproject",
        "READY_URL": f"http://127.0.0.1:{server.server_port}/readyz",
        "READY_TIMEOUT_SECONDS": "4",
    }
    yield workdir, state, env
    server.shutdown()


def deploy(tag, workdir, env):
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "deploy.sh"), tag],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_deploy_records_the_tag_when_ready_and_rolls_back_when_not(fake_server):
    workdir, state, env = fake_server
    first = deploy("good-1", workdir, env)
    assert first.returncode == 0, first.stderr
    assert (workdir / ".deployed-tag").read_text().strip() == "good-1"
    calls = (state / "calls").read_text().splitlines()
    assert calls[:3] == [
        "good-1 compose pull",
        "good-1 compose run --rm migrate",
        "good-1 compose up -d --remove-orphans",
    ]

    bad = deploy("bad-2", workdir, env)
    assert bad.returncode == 1
    assert "Rolling back to good-1" in bad.stderr and "it is ready" in bad.stderr
    assert (state / "running").read_text().strip() == "good-1"
    assert (workdir / ".deployed-tag").read_text().strip() == "good-1"
