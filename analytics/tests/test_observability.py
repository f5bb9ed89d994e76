"""/metrics behind its token, the JSON log lines, and per-minute request counts."""

import copy
import json
import logging
import logging.config
from datetime import datetime, timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from analytics.models import RequestMinute
from analytics.request_metrics import MinuteCounter, add_request_counts, requests_per_minute
from analytics.services import CallRecord, record_call

pytestmark = pytest.mark.django_db


def test_metrics_is_404_without_a_token_and_401_with_a_wrong_one(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    settings.METRICS_TOKEN = "s3cret-token"
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "s3cret" not in wrong.content.decode()


def test_metrics_exposes_ai_calls_tokens_cost_and_http(client, settings):
    settings.METRICS_TOKEN = "s3cret-token"
    record_call(
        CallRecord(
            task_type="chat",
            model="gpt-4o-mini",
            base_url="https://x/v1",
            status="ok",
            input_tokens=1000,
            output_tokens=500,
            latency_ms=1200,
            ttft_ms=300,
            variant="control",
        )
    )
    client.get("/accounts/login/")
    response = client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert (
        'aiproject_ai_calls_total{model="gpt-4o-mini",status="ok",task_type="chat",variant="control"}'
        in text
    )
    assert 'gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",' in text
    assert 'gen_ai_token_type="output"' in text
    assert "gen_ai_client_operation_duration_seconds_bucket" in text
    assert "aiproject_ai_time_to_first_token_seconds_bucket" in text
    assert 'aiproject_ai_cost_usd_total{model="gpt-4o-mini"' in text
    assert 'aiproject_http_requests_total{status_class="2xx"}' in text
    assert "aiproject_sse_streams_open" in text


def json_line(record: logging.LogRecord) -> dict:
    # configure_formatter consumes its dict: give it a copy of the settings' one.
    config = copy.deepcopy(django_settings.LOGGING["formatters"]["json"])
    formatter = logging.config.dictConfigClass({"version": 1}).configure_formatter(config)
    return json.loads(formatter.format(record))


def test_ai_call_log_line_has_the_documented_fields(caplog):
    caplog.set_level(logging.INFO, logger="analytics.ai_call")
    record_call(
        CallRecord(
            task_type="title",
            model="gpt-4o-mini",
            base_url="https://x/v1",
            status="ok",
            input_tokens=10,
            output_tokens=5,
            latency_ms=99,
            ttft_ms=None,
            request_id="req-1",
        )
    )
    line = json_line(next(r for r in caplog.records if r.name == "analytics.ai_call"))
    for field in (
        "event",
        "model",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "latency_ms",
        "ttft_ms",
        "status",
        "task_type",
        "request_id",
        "timestamp",
    ):
        assert field in line, field
    assert (
        line["event"] == "ai_call" and line["total_tokens"] == 15 and line["request_id"] == "req-1"
    )


def test_http_request_log_line_and_request_id(client, caplog):
    caplog.set_level(logging.INFO, logger="analytics.http")
    response = client.get("/accounts/login/", headers={"X-Request-ID": "abc-123"})
    assert response["X-Request-ID"] == "abc-123"
    generated = client.get("/accounts/login/", headers={"X-Request-ID": "bad id with spaces"})
    assert (
        generated["X-Request-ID"] != "bad id with spaces" and len(generated["X-Request-ID"]) == 32
    )
    lines = [json_line(r) for r in caplog.records if r.name == "analytics.http"]
    assert lines[0] | {"duration_ms": 0} == lines[0] | {
        "event": "http_request",
        "method": "GET",
        "path": "/accounts/login/",
        "status": 200,
        "request_id": "abc-123",
        "duration_ms": 0,
    }


def test_request_counts_add_up_per_minute_across_flushes():
    minute = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=3)
    first, second = MinuteCounter(), MinuteCounter()  # two processes
    for status in (200, 200, 502):
        first.count(status, now=minute + timedelta(seconds=5))
    second.count(500, now=minute + timedelta(seconds=50))
    second.count(200, now=minute + timedelta(minutes=1))
    first.flush()
    second.flush()
    rows = {r.minute: (r.requests, r.errors_5xx) for r in RequestMinute.objects.all()}
    assert rows == {minute: (4, 2), minute + timedelta(minutes=1): (1, 0)}
    assert first.flush() == 0  # nothing left


def test_the_middleware_counts_requests(client, monkeypatch):
    monkeypatch.setattr("analytics.request_metrics.FLUSH_EVERY_SECONDS", 1e9)  # no flush now
    before = sum(c[0] for c in requests_per_minute._counts.values())
    client.get("/accounts/login/")
    client.get("/no-such-page/")
    after = sum(c[0] for c in requests_per_minute._counts.values())
    assert after - before == 2


def test_add_request_counts_accepts_aware_minutes():
    minute = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.UTC)
    add_request_counts({minute: [3, 1]})
    add_request_counts({minute: [2, 0]})
    row = RequestMinute.objects.get()
    assert (row.minute, row.requests, row.errors_5xx) == (minute, 5, 1)
