"""/healthz and /readyz over real HTTP, whatever the Host header."""

import httpx
import pytest
from django.conf import settings

from devtools.live import app_env, run_app_server


def test_healthz_and_readyz_answer_with_any_host(app_server):
    with httpx.Client(base_url=app_server.base_url) as client:
        health = client.get("/healthz", headers={"Host": "internal-probe"})
        ready = client.get("/readyz", headers={"Host": "10.0.0.7:8000"})
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["checks"]["database"]["ok"] is True
    assert ("redis" in body["checks"]) == bool(settings.REDIS_URL)


@pytest.mark.django_db(transaction=True)
def test_readyz_names_the_part_that_is_down(simulator, tmp_path):
    # A server whose Redis does not answer (nothing listens on port 1) and a reachable database.
    env = app_env(simulator, REDIS_URL="redis://127.0.0.1:1/0")
    with run_app_server(env=env, log_dir=tmp_path) as server:
        ready = httpx.get(f"{server.base_url}/readyz", timeout=10)
        health = httpx.get(f"{server.base_url}/healthz", timeout=10)
    assert ready.status_code == 503
    body = ready.json()
    assert body["failing"] == ["redis"]
    assert body["checks"]["database"]["ok"] is True
    assert health.status_code == 200  # alive, just not ready
