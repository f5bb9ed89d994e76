"""The comparison page as an operator uses it: clear variant labels, the life-cycle buttons
(the same views, permissions and history as the change page's) and the daily charts."""

import re
from datetime import datetime, time, timedelta
from html import unescape

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.utils import timezone

from analytics.rollups import rollup_range
from analytics.tests.factories import make_call
from analytics.timezones import reporting_zone
from experiments.models import Experiment, Feedback, PromptVersion, Variant

from . import test_admin
from .test_admin import assert_csp_clean, compare_url, log_messages, messages_of

# The admin tests' fixtures: a superuser's client, and a draft experiment with two variants.
superuser = test_admin.superuser
admin_client = test_admin.admin_client
experiment = test_admin.experiment

pytestmark = pytest.mark.django_db


def forms_on(html: str) -> dict[str, tuple[str, dict[str, str]]]:
    """Return each POST form of the page by its button's ``data-action``: (URL, hidden fields)."""
    found = {}
    for action, body in re.findall(
        r'<form method="post" action="([^"]+)"[^>]*>(.*?)</form>', html, re.S
    ):
        button = re.search(r'data-action="([^"]+)"', body)
        if button is None:
            continue
        fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', body))
        found[button.group(1)] = (unescape(action), fields)
    return found


def test_variant_columns_are_labelled_by_key_and_role(admin_client, experiment):
    html = admin_client.get(compare_url(experiment)).content.decode()
    heads = {
        key: re.sub(r"<[^>]+>", "", cell).split()
        for key, cell in re.findall(r'data-variant-head="([^"]+)">(.*?)</th>', html)
    }
    assert heads == {
        "control": ["control", "control", "group"],
        "experiment": ["experiment", "treatment"],
    }
    assert "(control)" not in html


@pytest.mark.parametrize(
    ("status", "action", "data", "expected_status", "message"),
    [
        ("draft", "start", {}, "running", "Started, with 10.00% of users enrolled."),
        ("running", "pause", {}, "paused", "Paused"),
        ("paused", "resume", {}, "running", "Resumed"),
        ("running", "traffic", {"traffic_percent": "25"}, "running", "from 10.00% to 25.00%"),
        ("running", "rollback", {}, "completed", "Rolled back"),
    ],
)
def test_each_button_of_the_comparison_page_runs_its_service_and_comes_back(
    admin_client, superuser, experiment, status, action, data, expected_status, message
):
    Experiment.objects.filter(pk=experiment.pk).update(status=status)
    page = admin_client.get(compare_url(experiment)).content.decode()
    assert_csp_clean(page)
    url, fields = forms_on(page)[action]
    assert fields["return_to"] == "compare" and "csrfmiddlewaretoken" in fields
    response = admin_client.post(url, {**fields, **data}, follow=True)
    assert response.redirect_chain[-1][0] == compare_url(experiment)
    experiment.refresh_from_db()
    assert experiment.status == expected_status
    assert any(message in m for m in messages_of(response))
    entry = LogEntry.objects.get(object_id=str(experiment.pk), action_flag=CHANGE)
    assert entry.user == superuser and message in entry.change_message


def test_promote_from_the_comparison_page_makes_the_variant_live(admin_client, experiment):
    Experiment.objects.filter(pk=experiment.pk).update(status="running")
    treatment = Variant.objects.get(key="experiment").prompt_version
    url, fields = forms_on(admin_client.get(compare_url(experiment)).content.decode())[
        "promote-experiment"
    ]
    assert fields["promote"] == "experiment"
    response = admin_client.post(url, fields)
    assert response.status_code == 302 and response["Location"] == compare_url(experiment)
    experiment.refresh_from_db()
    assert experiment.status == "completed" and experiment.ended_at is not None
    assert list(PromptVersion.objects.filter(is_live=True)) == [treatment]
    assert log_messages(treatment) == ["Made live by completing experiment canary."]
    assert any("promoted experiment" in m for m in log_messages(experiment))
    # A completed experiment has no more buttons.
    assert forms_on(admin_client.get(compare_url(experiment)).content.decode()) == {}


def test_promote_is_refused_without_the_prompt_version_permission(
    client, django_user_model, experiment, admin_client
):
    Experiment.objects.filter(pk=experiment.pk).update(status="running")
    # The form as a fully permitted user sees it; posted by an operator who may not promote.
    url, _ = forms_on(admin_client.get(compare_url(experiment)).content.decode())[
        "promote-experiment"
    ]
    operator = django_user_model.objects.create_user("op", password="x-pass-123456", is_staff=True)
    operator.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_experiment", "change_experiment"])
    )
    client.force_login(operator)
    page = client.get(compare_url(experiment)).content.decode()
    assert set(forms_on(page)) == {"pause", "traffic", "rollback"}
    assert client.post(url, {"promote": "experiment", "return_to": "compare"}).status_code == 403
    experiment.refresh_from_db()
    assert experiment.status == "running"
    assert not Variant.objects.get(key="experiment").prompt_version.is_live
    assert log_messages(experiment) == []


def test_viewers_see_the_comparison_without_buttons_and_cannot_post(
    client, django_user_model, experiment
):
    viewer = django_user_model.objects.create_user(
        "viewer", password="x-pass-123456", is_staff=True
    )
    viewer.user_permissions.add(Permission.objects.get(codename="view_experiment"))
    client.force_login(viewer)
    page = client.get(compare_url(experiment)).content.decode()
    assert forms_on(page) == {} and 'data-section="lifecycle"' not in page
    start = f"/admin/experiments/experiment/{experiment.pk}/start/"
    assert client.post(start, {"return_to": "compare"}).status_code == 403
    experiment.refresh_from_db()
    assert experiment.status == "draft"


def test_return_to_names_a_page_never_a_url(admin_client, experiment):
    response = admin_client.post(
        f"/admin/experiments/experiment/{experiment.pk}/start/",
        {"return_to": "https://evil.example.com/"},
    )
    assert response["Location"] == f"/admin/experiments/experiment/{experiment.pk}/change/"


def test_daily_charts_per_variant(admin_client, experiment, django_user_model):
    zone = reporting_zone()
    today = timezone.localtime(timezone.now(), zone).date()
    days = [today - timedelta(days=2), today - timedelta(days=1)]
    Experiment.objects.filter(pk=experiment.pk).update(
        status="running", started_at=datetime.combine(days[0], time(9), tzinfo=zone)
    )
    from chat.models import Conversation, Message

    user = django_user_model.objects.create_user("u")
    conversation = Conversation.objects.create(user=user)
    # Day 1: control 4 calls (1 error, 1,000 ms); treatment 2 calls (both ok, 3,000 ms).
    # Day 2: control 2 ok calls (2,000 ms). Ratings: control day 1, 1 up of 2.
    plan = [
        (days[0], "control", ["ok", "ok", "ok", "error"], 1000),
        (days[0], "experiment", ["ok", "ok"], 3000),
        (days[1], "control", ["ok", "ok"], 2000),
    ]
    for day, key, statuses, latency in plan:
        for n, status in enumerate(statuses):
            make_call(
                created_at=datetime.combine(day, time(12, n), tzinfo=zone),
                status=status,
                variant=f"canary/{key}",
                latency_ms=latency,
            )
    for n, rating in enumerate((1, -1)):
        question = Message.objects.create(conversation=conversation, role="user", content="q")
        reply = Message.objects.create(
            conversation=conversation, role="assistant", reply_to=question, content="a",
            status="completed", variant="canary/control",
        )  # fmt: skip
        Feedback.objects.create(
            message=reply, user=user, rating=rating, variant="canary/control",
            created_at=datetime.combine(days[0], time(13, n), tzinfo=zone),
        )  # fmt: skip
    rollup_range(datetime.combine(days[0], time(0), tzinfo=zone), timezone.now())

    html = admin_client.get(compare_url(experiment)).content.decode()
    assert_csp_clean(html)
    charts = dict(re.findall(r'data-chart="(\w+)"><svg(.*?)</svg>', html, re.S))
    assert set(charts) == {"satisfaction", "error_rate", "latency_ms", "cost_per_call"}
    label = lambda d: f"{d:%b} {d.day}"  # noqa: E731
    d1, d2 = label(days[0]), label(days[1])
    assert f"{d1} · control (control group): 50.0%" in charts["satisfaction"]
    # Nobody rated it: no point of it (the day's hover band lists it as "—").
    assert "experiment (treatment): " not in re.sub(r"[^\n]*: —", "", charts["satisfaction"])
    assert "experiment (treatment): —" in charts["satisfaction"]
    assert f"{d1} · control (control group): 25.0%" in charts["error_rate"]
    assert f"{d1} · experiment (treatment): 0.0%" in charts["error_rate"]
    assert f"{d2} · control (control group): 0.0%" in charts["error_rate"]
    assert f"{d2} · experiment (treatment):" not in charts["error_rate"]  # no calls that day
    assert f"{d1} · control (control group): 1,000 ms" in charts["latency_ms"]
    assert f"{d1} · experiment (treatment): 3,000 ms" in charts["latency_ms"]
    assert f"{d2} · control (control group): 2,000 ms" in charts["latency_ms"]
    assert f"{label(today)}" in charts["cost_per_call"]  # the days run to today


def test_a_draft_has_no_daily_charts_yet(admin_client, experiment):
    html = admin_client.get(compare_url(experiment)).content.decode()
    assert "Not started yet: the daily charts begin with the start." in html
    assert "data-chart=" not in html
