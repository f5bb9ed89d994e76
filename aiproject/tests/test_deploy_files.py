"""The deployment files, linted by real linters. Building and running them is the container part
of .ci/run (scripts/ci-containers.sh: images, compose stack, rolling deploy with rollback)."""

import subprocess
import sys
from pathlib import Path

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


def test_dockerfile_has_no_syntax_line_and_takes_every_base_image_as_an_argument():
    """A `# syntax=` line makes BuildKit fetch a frontend image from a registry."""
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "# syntax=" not in dockerfile
    for arg in ("ARG PYTHON_IMAGE=python:", "ARG NGINX_IMAGE=nginx:", 'ARG EXTRA_CA_CERTS=""'):
        assert arg in dockerfile
    compose = (REPO / "docker-compose.yml").read_text()
    for default in (
        "${POSTGRES_IMAGE:-postgres:",
        "${REDIS_IMAGE:-redis:",
        "${PYTHON_IMAGE:-python:",
    ):
        assert default in compose


def test_shell_scripts_parse():
    """The scripts themselves run for real in .ci/run's container part (scripts/ci-containers.sh)."""
    for script in ("deploy.sh", "build-base-images.sh", "ci-containers.sh"):
        result = run("bash", "-n", str(REPO / "scripts" / script))
        assert result.returncode == 0, result.stderr
