"""``call_recorded``: analytics announces every recorded call once it is committed. The quotas app
(above analytics, which does not import it) listens and charges it: analytics/quotas/tests/
test_quotas.py (a recorded call is charged)."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from analytics.models import AICall
from analytics.services import CallRecord, record_call
from analytics.signals import call_recorded
from analytics.tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def announced():
    heard = []

    def listen(sender, **kwargs):
        heard.append((sender, kwargs))

    call_recorded.connect(listen, dispatch_uid="test:listen")
    yield heard
    call_recorded.disconnect(dispatch_uid="test:listen")


def a_call(**extra) -> CallRecord:
    return CallRecord(
        task_type="chat",
        model="unpriced-model",
        base_url="http://127.0.0.1:1/v1",
        status="ok",
        input_tokens=100,
        output_tokens=50,
        latency_ms=10,
        **extra,
    )


def test_a_recorded_call_is_announced_once_with_its_row_and_start(announced):
    user = make_user()
    started = timezone.now() - timedelta(minutes=3)
    row = record_call(a_call(user_id=user.pk, started_at=started))
    [(sender, kwargs)] = announced
    assert sender is AICall
    assert kwargs["call"] == row and kwargs["call"].total_tokens == 150
    assert kwargs["started_at"] == started
    # Without a start, the call is charged to the day it was recorded.
    record_call(a_call())
    assert announced[1][1]["started_at"] == announced[1][1]["call"].created_at


def test_the_announcement_waits_for_the_commit_and_a_rollback_cancels_it(announced):
    with pytest.raises(RuntimeError), transaction.atomic():
        record_call(a_call())
        assert announced == []  # not before the commit
        raise RuntimeError("rolled back")
    assert announced == [] and not AICall.objects.exists()
    with transaction.atomic():
        record_call(a_call())
        assert announced == []
    assert len(announced) == 1
