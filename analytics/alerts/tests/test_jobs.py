"""The alerts' monitor job: once a minute, and it reports only what changed."""

import time

import pytest
from django.utils import timezone

from analytics.alerts.jobs import AlertJobs
from analytics.alerts.models import AlertEvent
from analytics.models import RequestMinute

pytestmark = pytest.mark.django_db


def test_the_job_fires_once_and_waits_a_minute_before_evaluating_again():
    now = timezone.now()
    RequestMinute.objects.create(
        minute=now.replace(second=0, microsecond=0), requests=100, errors_5xx=50
    )
    job = AlertJobs()
    assert job.run_due(now) == ["alerts HTTP error rate: fired"]
    assert AlertEvent.objects.get().rule.name == "HTTP error rate"
    AlertEvent.objects.all().delete()
    assert job.run_due(now) == []  # not due: nothing evaluated, nothing fired again
    assert not AlertEvent.objects.exists()
    assert AlertJobs().run_due(now) == ["alerts HTTP error rate: fired"]  # a fresh schedule


def test_the_job_evaluates_as_often_as_the_rollups_refresh(settings):
    settings.ANALYTICS_ROLLUP_SECONDS = 1.0  # `make run` uses 15
    now = timezone.now()
    RequestMinute.objects.create(
        minute=now.replace(second=0, microsecond=0), requests=100, errors_5xx=50
    )
    job = AlertJobs()
    assert job.run_due(now) == ["alerts HTTP error rate: fired"]
    AlertEvent.objects.all().delete()
    time.sleep(1.1)
    assert job.run_due(now) == ["alerts HTTP error rate: fired"]  # due again after 1 s
