"""The one application error type and its JSON answer."""

import json
from datetime import timedelta

from django.utils import timezone

from analytics.quotas import QuotaExceeded
from chat.services import ChatError, ReplyInProgress
from core.errors import AppError, error_response
from core.llm import UpstreamFault
from experiments.services import ExperimentError


def _answer(exc: AppError) -> tuple[int, dict, str | None]:
    response = error_response(exc)
    return response.status_code, json.loads(response.content), response.get("Retry-After")


def test_every_app_refusal_is_an_app_error():
    fault = UpstreamFault(
        code="upstream_timeout", call_status="timeout", retryable=True, message="x"
    )
    for exc in (ChatError("x"), ExperimentError("x"), fault):
        assert isinstance(exc, AppError)
    assert issubclass(QuotaExceeded, AppError)


def test_an_error_is_answered_with_its_status_code_message_and_field():
    status, body, retry_after = _answer(ChatError("Too long.", code="too_long", field="content"))
    assert (status, retry_after) == (400, None)
    assert body == {"error": {"code": "too_long", "message": "Too long.", "field": "content"}}
    status, body, _ = _answer(ReplyInProgress("Busy."))
    assert status == 409 and body["error"] == {"code": "reply_in_progress", "message": "Busy."}
    status, body, _ = _answer(AppError("Later.", code="busy", status=503, retryable=True))
    assert status == 503 and body["error"]["retryable"] is True


def test_a_quota_refusal_names_its_limit_and_when_to_retry():
    resets = timezone.now() + timedelta(seconds=30)
    exc = QuotaExceeded(
        limit="requests_per_minute", used=5, requested=1, allowed=5, resets_at=resets
    )
    status, body, retry_after = _answer(exc)
    assert status == 429 and body["error"]["code"] == "rate_limited"
    assert body["error"]["limit"] == "requests_per_minute"
    assert retry_after == str(body["error"]["retry_after"]) and 29 <= int(retry_after) <= 30


def test_a_fractional_retry_after_is_sent_as_whole_seconds_rounded_up():
    exc = AppError("Later.", code="busy", status=503, retryable=True)
    exc.retry_after = 1.2
    assert _answer(exc)[2] == "2"
    exc.retry_after = 3
    assert _answer(exc)[2] == "3"
