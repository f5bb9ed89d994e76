"""The refusals of a draining process, in this process (chat/tests/test_drain.py stops real ones)."""

import pytest

from analytics.request_metrics import requests_per_minute
from core import draining


@pytest.fixture
def drain():
    draining.begin()
    yield
    draining.reset()


def counted() -> list[int]:
    return [sum(c[i] for c in requests_per_minute._counts.values()) for i in (0, 1)]


@pytest.mark.django_db
def test_refusals_are_retryable_and_not_counted_as_requests_or_errors(drain, client, monkeypatch):
    monkeypatch.setattr("analytics.request_metrics.FLUSH_EVERY_SECONDS", 1e9)  # no flush now
    before = counted()
    for path in ("/api/conversations/1/messages", "/api/messages/1/regenerate"):
        refused = client.post(path, {}, content_type="application/json")
        assert refused.status_code == 503
        assert refused.json()["error"] == {
            "code": "draining",
            "message": "This server is restarting. Please try again.",
            "retry_after": 2,
        }
        assert refused["Retry-After"] == "2"
    stream = client.get("/api/messages/1/stream")
    assert (stream.status_code, stream.json()["error"]["code"]) == (503, "draining")
    # Served elsewhere, it is counted there; here it is neither a request nor a 5xx.
    assert counted() == before
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()) == (503, {"status": "draining"})
    # What starts no work is still served.
    assert client.get("/healthz").status_code == 200
    assert client.get("/accounts/login/").status_code == 200
    assert counted()[0] == before[0] + 1


def test_not_draining_by_default():
    assert not draining.is_draining() and not draining.work_starting()
