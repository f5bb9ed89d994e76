"""The project-wide commands in core, running what the apps registered (core.jobs, core.demo)."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from analytics.models import AICall
from analytics.quotas import limits_for
from chat.models import Conversation
from core.jobs import periodic_jobs
from experiments.models import Experiment

pytestmark = pytest.mark.django_db


def test_monitor_runs_the_apps_jobs_in_their_order():
    # The guardrails pause an experiment before the alerts report the pause; the alerts read
    # the rollups the analytics job has just brought up to date.
    assert [name for name, _ in periodic_jobs()] == [
        "sweep",
        "guardrails",
        "analytics",
        "alerts",
        "quotas",
    ]


def test_seed_demo_refuses_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="only with DEBUG on"):
        call_command("seed_demo")


def test_seed_demo_seeds_every_app_once():
    out = StringIO()
    call_command("seed_demo", "--force", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Demo AI call history:")
    assert lines[1].startswith("Demo canary experiment 'canary-gpt-4o' running at 10%")
    assert lines[2].startswith("Demo login: username 'demo', password 'demo' (a superuser")
    assert lines[3].startswith("Demo login: username 'alice', password 'alice' (an ordinary")
    assert Conversation.objects.filter(user__username="demo", title="Welcome (demo)").exists()
    assert Experiment.objects.filter(key="canary-gpt-4o").exists()
    calls = AICall.objects.count()
    assert calls > 0

    again = StringIO()
    call_command("seed_demo", "--force", stdout=again)
    assert again.getvalue().splitlines() == lines[2:]
    assert AICall.objects.count() == calls
    assert get_user_model().objects.filter(username__in=["demo", "alice"]).count() == 2


def test_seed_demo_makes_a_superuser_and_an_ordinary_user_with_quotas(settings):
    settings.QUOTA_TOKENS_PER_DAY = 1000  # the suite runs without default quotas
    call_command("seed_demo", "--force", stdout=StringIO())
    users = get_user_model()
    demo, alice = users.objects.get(username="demo"), users.objects.get(username="alice")
    assert demo.is_superuser and demo.check_password("demo")
    assert not (alice.is_staff or alice.is_superuser) and alice.check_password("alice")
    assert limits_for(demo).exempt
    alice_limits = limits_for(alice)
    assert not alice_limits.exempt and alice_limits.tokens_per_day == 1000
