"""The comparison of groups: per-variant numbers from the data, tests, minimum sample, SRM."""

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from analytics.rollups import rollup_range
from analytics.tests.factories import make_call, make_price
from chat.models import Conversation, Message
from experiments import stats
from experiments.models import Exposure, Feedback
from experiments.selectors import compare
from experiments.tests.factories import make_canary, make_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def experiment(django_user_model):
    control, treatment = make_version("a", model="m-control"), make_version("b", model="m-treat")
    return make_canary(control=control, treatment=treatment, min_sample=50).experiment


def seed(exp, django_user_model, *, n_users, calls_per_user, error_p, up_p, latency, rng, key):
    make_price(model=f"m-{key}", inp="1", out="2")
    label = f"canary/{key}"
    now = timezone.now() - timedelta(hours=1)
    for i in range(n_users):
        user = django_user_model.objects.create_user(f"{key}{i}")
        Exposure.objects.create(experiment=exp, user=user, variant=key)
        conversation = Conversation.objects.create(user=user)
        for _ in range(calls_per_user):
            status = "error" if rng.random() < error_p else "ok"
            question = Message.objects.create(conversation=conversation, role="user", content="q")
            reply = Message.objects.create(
                conversation=conversation,
                role="assistant",
                reply_to=question,
                content="a",
                status="completed" if status == "ok" else "failed",
                variant=label,
            )
            make_call(
                created_at=now,
                model=f"m-{key}",
                status=status,
                variant=label,
                user=user,
                conversation_id=conversation.pk,
                message_id=reply.pk,
                latency_ms=int(rng.gauss(latency, 200)),
                ttft_ms=int(rng.gauss(300, 50)),
                output_tokens=rng.randint(50, 150),
            )
            if status == "ok" and rng.random() < 0.5:
                Feedback.objects.create(
                    message=reply,
                    user=user,
                    rating=1 if rng.random() < up_p else -1,
                    variant=label,
                )


def test_comparison_numbers_tests_and_verdicts(experiment, django_user_model):
    rng = random.Random(11)
    seed(
        experiment,
        django_user_model,
        n_users=30,
        calls_per_user=6,
        error_p=0.02,
        up_p=0.6,
        latency=2000,
        rng=rng,
        key="control",
    )
    seed(
        experiment,
        django_user_model,
        n_users=30,
        calls_per_user=6,
        error_p=0.20,
        up_p=0.8,
        latency=3000,
        rng=rng,
        key="experiment",
    )
    rollup_range(timezone.now() - timedelta(days=1), timezone.now() + timedelta(minutes=1))
    result = compare(experiment)
    control, treatment = result.variants
    assert (control.key, treatment.key) == ("control", "experiment")
    assert control.users == treatment.users == 30
    assert control.calls == treatment.calls == 180
    assert control.conversations == 30
    assert (
        control.errors == Message.objects.filter(variant="canary/control", status="failed").count()
    )
    assert control.rated == Feedback.objects.filter(variant="canary/control").count()
    assert (
        control.replies
        == Message.objects.filter(variant="canary/control", status="completed").count()
    )
    assert control.p95_latency_ms is not None and treatment.latency.mean > control.latency.mean

    diffs = {d.metric: d for d in result.differences["experiment"]}
    error = diffs["error rate"]
    expected = stats.two_proportion_z_test(control.errors, 180, treatment.errors, 180)
    assert error.p_value == pytest.approx(expected.p_value)
    assert error.enough_data and error.significant and error.diff > 0
    latency = diffs["latency (ms)"]
    assert latency.enough_data and latency.p_value < 0.001 and latency.relative > 0.3
    # Satisfaction has fewer rated replies than the minimum sample of 50? No: ~80 each.
    assert diffs["satisfaction"].enough_data
    assert not result.srm.mismatch


def test_below_the_minimum_sample_there_is_no_verdict(experiment, django_user_model):
    rng = random.Random(3)
    seed(
        experiment,
        django_user_model,
        n_users=3,
        calls_per_user=3,
        error_p=0.5,
        up_p=0.5,
        latency=1000,
        rng=rng,
        key="control",
    )
    seed(
        experiment,
        django_user_model,
        n_users=3,
        calls_per_user=3,
        error_p=0.0,
        up_p=0.5,
        latency=1000,
        rng=rng,
        key="experiment",
    )
    result = compare(experiment)
    assert all(not d.enough_data for d in result.differences["experiment"])


def test_sample_ratio_mismatch_is_flagged(experiment, django_user_model):
    for i in range(1100):
        user = django_user_model(username=f"x{i}")
        user.save()
        Exposure.objects.create(
            experiment=experiment, user=user, variant="control" if i < 660 else "experiment"
        )
    result = compare(experiment)
    assert result.srm.mismatch and result.srm.p_value < 0.001
