"""eval_prompts against the simulator over real HTTP: answers, judge scores, AI calls, bad input."""

import json
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from analytics.models import AICall
from experiments.evaluation import parse_judgement
from experiments.models import EvalRun
from experiments.tests.factories import make_canary, make_version

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def experiment(settings, simulator):
    settings.AI_BASE_URL = simulator.base_url
    settings.AI_API_KEY = "sk-test-simulator-key"
    control = make_version("Control.", max_tokens=60)
    treatment = make_version("Treatment.", model="gpt-4o", max_tokens=60)
    return make_canary(control=control, treatment=treatment).experiment


def test_eval_prompts_runs_both_variants_and_the_judge(experiment, simulator, tmp_path, capsys):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "\n".join(json.dumps({"prompt": p}) for p in ["What is SSE?", "Explain pooling.", "Hi"])
        + "\n\n"
    )
    simulator.clear()
    call_command(
        "eval_prompts",
        "--experiment",
        "canary",
        "--prompts",
        str(prompts),
        "--judge-model",
        "gpt-4.1",
    )
    run = EvalRun.objects.get()
    assert run.results.count() == 3 and run.finished_at
    for result in run.results.all():
        assert set(result.answers) == {"control", "experiment"}
        assert set(result.scores) == {"control", "experiment"} and not result.error
        assert all(1 <= s <= 10 for s in result.scores.values())
    assert set(run.summary) == {"control", "experiment"}
    assert run.summary["control"]["judged"] == 3
    calls = AICall.objects.filter(task_type="eval")
    assert calls.count() == 9  # 3 prompts x (2 variants + 1 judge)
    assert calls.filter(variant="canary/control", model="gpt-4o-mini").count() == 3
    assert calls.filter(variant="canary/experiment", model="gpt-4o").count() == 3
    assert calls.filter(variant="", model="gpt-4.1").count() == 3
    sent = simulator.requests()
    assert {r["model"] for r in sent} == {"gpt-4o-mini", "gpt-4o", "gpt-4.1"}
    assert any(m["content"] == "Treatment." for r in sent for m in r["messages"])
    assert "mean score" in capsys.readouterr().out


def test_a_failing_variant_is_recorded_not_judged(experiment, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "Break [sim:status=500]"}) + "\n")
    call_command("eval_prompts", "--experiment", "canary", "--prompts", str(prompts))
    result = EvalRun.objects.get().results.get()
    assert "no answer from" in result.error and result.scores == {}
    assert AICall.objects.filter(task_type="eval", status="error").count() == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json\n", "p.jsonl:1: not a JSON object"),
        ('{"question": "x"}\n', 'p.jsonl:1: needs a non-empty "prompt" string'),
        ("\n\n", "no prompts"),
    ],
)
def test_bad_prompt_files_are_refused(experiment, tmp_path, content, message):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(content)
    with pytest.raises(CommandError, match=message) as error:
        call_command("eval_prompts", "--experiment", "canary", "--prompts", str(prompts))
    assert error.value.returncode == 2
    assert not EvalRun.objects.exists()


def test_unknown_experiment_is_refused(tmp_path):
    with pytest.raises(CommandError, match="no experiment with key 'nope'"):
        call_command("eval_prompts", "--experiment", "nope", "--prompts", str(tmp_path / "x"))


def test_judgement_parsing():
    assert parse_judgement('Sure: {"scores": {"A": 7, "B": 9.4}, "reason": "B"}', ["A", "B"]) == (
        {"A": 7, "B": 9},
        "B",
    )
    for bad in (
        "no json",
        '{"scores": {"A": 7}}',
        '{"scores": {"A": 11, "B": 2}}',
        '{"scores": {"A": true, "B": 2}}',
    ):
        with pytest.raises(ValueError):
            parse_judgement(bad, ["A", "B"])


def test_the_comparison_page_shows_the_latest_evaluation(
    experiment, tmp_path, client, django_user_model
):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "What is SSE?"}) + "\n")
    call_command("eval_prompts", "--experiment", "canary", "--prompts", str(prompts))
    client.force_login(django_user_model.objects.create_superuser("root", password="x"))
    page = client.get(f"/admin/experiments/experiment/{experiment.pk}/compare/").content.decode()
    assert 'data-eval-variant="control"' in page and 'data-eval-variant="experiment"' in page
    run = EvalRun.objects.get()
    assert client.get(f"/admin/experiments/evalrun/{run.pk}/change/").status_code == 200


def test_the_global_daily_cap_stops_an_evaluation_before_the_upstream(
    experiment, settings, simulator, tmp_path
):
    from analytics import quotas
    from analytics.quotas.models import QuotaEvent
    from analytics.tests.factories import make_price

    make_price(model="gpt-4o-mini")
    make_price(model="gpt-4o")
    settings.AI_DAILY_COST_CAP_USD = Decimal("0.000010")  # less than one call's worst case
    quotas.backend().clear()
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "What is SSE?"}) + "\n")
    simulator.clear()
    call_command("eval_prompts", "--experiment", "canary", "--prompts", str(prompts))
    result = EvalRun.objects.get().results.get()
    assert "quota_exceeded" in result.error
    assert simulator.requests() == []
    assert not AICall.objects.exists()
    assert QuotaEvent.objects.filter(stage="evaluation", limit="global_daily_cost").exists()
    quotas.backend().clear()
