"""The one call path (``analytics.quotas.llm_calls.complete``) against the simulator over real HTTP:
one AICall per attempt, the quota reserved, charged and released, faults translated."""

import asyncio
import uuid
from decimal import Decimal

import pytest

from analytics import quotas
from analytics.models import AICall
from analytics.quotas import llm_calls
from analytics.quotas.models import QuotaEvent
from analytics.tests.factories import make_price, make_user
from core import llm

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "gpt-4o-mini"


@pytest.fixture
def upstream(settings, simulator):
    """The simulator as the upstream, short back-offs, quotas counted in the database."""
    settings.AI_BASE_URL = simulator.base_url
    settings.AI_API_KEY = "sk-test-simulator-key"
    settings.AI_RETRY_BASE_DELAY_SECONDS = 0.01
    settings.AI_REQUEST_TIMEOUT_SECONDS = 1.5
    settings.QUOTA_BACKEND = "database"
    settings.QUOTA_TOKENS_PER_DAY = 100_000
    quotas.backend.cache_clear()
    quotas.backend().clear()
    simulator.clear()
    yield simulator
    quotas.backend().clear()
    quotas.backend.cache_clear()


def complete(content: str, **kwargs):
    """Run ``llm_calls.complete`` for one user message in a fresh event loop."""

    async def main():
        try:
            return await llm_calls.complete(
                task_type=kwargs.pop("task_type", "title"),
                model=MODEL,
                messages=[{"role": "user", "content": content}],
                temperature=0.2,
                max_tokens=40,
                refusal_stage="title",
                **kwargs,
            )
        finally:
            await llm.get_client().close()

    return asyncio.run(main())


def tokens_today(user) -> int:
    meter = quotas.user_meters(user.pk, quotas.limits_for(user))[0]
    return quotas.meter_state(meter).used


def test_a_call_is_recorded_charged_and_its_reservation_released(upstream):
    user = make_user()
    answer = complete(f"Hello {uuid.uuid4().hex[:6]} [sim:tokens=7]", user_id=user.pk)
    assert answer.text and not answer.fault and answer.attempts == 1
    call = AICall.objects.get()
    assert (call.task_type, call.status, call.attempt, call.streamed) == ("title", "ok", 1, False)
    assert call.user_id == user.pk and call.output_tokens == 7 and not call.tokens_estimated
    # The reservation (input + max_tokens) is gone; the meter holds the recorded usage only.
    assert quotas.backend().open_reservations() == 0
    assert tokens_today(user) == call.total_tokens


def test_each_attempt_is_recorded_and_a_transient_fault_retried(upstream):
    user = make_user()
    content = f"Retry {uuid.uuid4().hex[:6]} [sim:status=503,fail_first=2]"
    answer = complete(content, user_id=user.pk, retries=2, request_id="req-7")
    assert answer.text and answer.attempts == 3 and answer.fault is None
    calls = list(AICall.objects.order_by("attempt"))
    assert [(c.attempt, c.status, c.error_code) for c in calls] == [
        (1, "error", "upstream_unavailable"),
        (2, "error", "upstream_unavailable"),
        (3, "ok", ""),
    ]
    assert {c.request_id for c in calls} == {"req-7"}
    assert len([r for r in upstream.requests() if content in str(r["messages"])]) == 3
    assert quotas.backend().open_reservations() == 0


@pytest.mark.parametrize(
    ("marker", "code", "statuses"),
    [
        ("status=401", "upstream_auth", ["error"]),  # never retried
        ("status=400", "upstream_rejected", ["error"]),
        ("status=429,retry_after=0", "upstream_rate_limited", ["rate_limited"] * 2),
        ("status=500", "upstream_unavailable", ["error"] * 2),
        ("stall", "upstream_timeout", ["timeout"] * 2),  # AI_REQUEST_TIMEOUT_SECONDS
        ("disconnect", "upstream_connection", ["error"] * 2),
    ],
)
def test_faults_are_translated_and_the_last_one_returned(upstream, marker, code, statuses):
    answer = complete(f"Fault {uuid.uuid4().hex[:6]} [sim:{marker}]", retries=1, task_type="eval")
    assert answer.text == "" and answer.fault is not None
    assert answer.fault.code == code and answer.error_code == code
    # The user-facing message, never the upstream's body.
    assert "invalid_api_key" not in answer.fault.message
    calls = list(AICall.objects.order_by("attempt"))
    assert [c.status for c in calls] == statuses
    assert {(c.task_type, c.error_code) for c in calls} == {("eval", code)}


def test_a_quota_refusal_sends_nothing(upstream, settings):
    make_price(model=MODEL)
    settings.AI_DAILY_COST_CAP_USD = Decimal("0.000001")  # less than the call's worst case
    answer = complete("Refused", task_type="eval")
    assert answer.refused is not None and answer.error_code == "quota_exceeded"
    assert upstream.requests() == [] and not AICall.objects.exists()
    assert QuotaEvent.objects.filter(stage="title", limit="global_daily_cost").count() == 1


def test_missing_usage_is_estimated(upstream):
    answer = complete("No usage [sim:no_usage,tokens=12]", task_type="eval")
    call = AICall.objects.get()
    assert answer.text and call.status == "ok" and call.tokens_estimated
    assert call.input_tokens > 0 and call.output_tokens > 0


def test_a_cancelled_call_is_recorded_and_its_reservation_released(upstream):
    user = make_user()

    async def main():
        try:
            task = asyncio.ensure_future(
                llm_calls.complete(
                    task_type="title",
                    model=MODEL,
                    messages=[{"role": "user", "content": "Slow [sim:ttft=5000]"}],
                    temperature=None,
                    max_tokens=40,
                    refusal_stage="title",
                    user_id=user.pk,
                    retries=2,
                )
            )
            for _ in range(200):  # until the request went out
                if upstream.requests():
                    break
                await asyncio.sleep(0.05)
            task.cancel()  # a process shutting down
            return await task
        finally:
            await llm.get_client().close()

    answer = asyncio.run(main())
    assert answer.cancelled and answer.attempts == 1 and answer.error_code == "interrupted"
    call = AICall.objects.get()
    assert (call.status, call.error_code, call.tokens_estimated) == (
        "cancelled",
        "interrupted",
        True,
    )
    assert quotas.backend().open_reservations() == 0
    assert tokens_today(user) == call.total_tokens
