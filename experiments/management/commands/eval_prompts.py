"""``manage.py eval_prompts --experiment KEY --prompts FILE [--judge-model M]``."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from experiments.evaluation import EvalInputError, run_evaluation
from experiments.models import Experiment


class Command(BaseCommand):
    help = (
        'Run every variant of an experiment on a JSONL file of prompts ({"prompt": ...} per '
        "line), have a judge model score the answers, and store the results."
    )

    def add_arguments(self, parser):
        parser.add_argument("--experiment", required=True, help="The experiment's key.")
        parser.add_argument("--prompts", required=True, type=Path, help="A JSONL file.")
        parser.add_argument("--judge-model", help="Default: AI_JUDGE_MODEL (or AI_MODEL).")

    def handle(self, *args, experiment, prompts, judge_model, **options):
        found = Experiment.objects.filter(key=experiment).first()
        if found is None:
            raise CommandError(f"--experiment: no experiment with key {experiment!r}", returncode=2)
        if found.variants.count() < 2:
            raise CommandError(f"{experiment} has fewer than two variants", returncode=2)
        try:
            run = run_evaluation(found, prompts, judge_model=judge_model or settings.AI_JUDGE_MODEL)
        except EvalInputError as exc:
            raise CommandError(f"--prompts: {exc}", returncode=2) from None
        results = run.results.count()
        errors = run.results.exclude(error="").count()
        self.stdout.write(f"Evaluated {results} prompts ({errors} without a verdict):")
        for key, line in run.summary.items():
            mean = "n/a" if line["mean_score"] is None else f"{line['mean_score']:.2f}"
            self.stdout.write(
                f"  {key}: mean score {mean} over {line['judged']} judged, {line['wins']} wins"
            )
