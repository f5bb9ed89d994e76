"""Offline evaluation of an experiment's variants: each answers a fixed list of prompts, and a
judge model scores the answers side by side. Every upstream request is an AI call with task type
``eval`` (the variants' calls carry their variant label and prompt version)."""

import asyncio
import json
import re
from pathlib import Path

from django.utils import timezone

from analytics.quotas import llm_calls
from core.db_thread import db
from core.task_types import TaskType

from .config import render_prompt
from .models import EvalResult, EvalRun, Experiment

JUDGE_PROMPT = (
    "You are an impartial judge. For the user's question below, score each answer from 1 (poor) "
    "to 10 (excellent) for helpfulness, correctness and clarity. Reply with JSON only, in the "
    'form {"scores": {"A": 7, "B": 9}, "reason": "one sentence"}.'
)
JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


class EvalInputError(ValueError):
    """The prompts file is unusable; the message names the line."""


def read_prompts(path: Path) -> list[str]:
    """Return the prompts of a JSONL file: one object per line with a "prompt" string."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EvalInputError(f"cannot read {path}: {exc.strerror}") from None
    prompts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            raise EvalInputError(f"{path}:{number}: not a JSON object") from None
        prompt = item.get("prompt") if isinstance(item, dict) else None
        if not isinstance(prompt, str) or not prompt.strip():
            raise EvalInputError(f'{path}:{number}: needs a non-empty "prompt" string')
        prompts.append(prompt.strip())
    if not prompts:
        raise EvalInputError(f"{path}: no prompts")
    return prompts


async def _complete(*, model, messages, temperature, max_tokens, variant="", version_id=None):
    """One evaluation call; the global daily cost cap applies (``analytics.quotas``)."""
    answer = await llm_calls.complete(
        task_type=TaskType.EVAL,
        model=model,
        messages=messages,
        temperature=temperature,
        max_tokens=max_tokens,
        refusal_stage="evaluation",
        variant=variant,
        version_id=version_id,
    )
    if answer.cancelled:  # the run is being stopped (its call is recorded)
        raise asyncio.CancelledError
    return answer


def parse_judgement(text: str, labels: list[str]) -> tuple[dict[str, int], str]:
    """Return {label: score} and the reason from the judge's reply; raise ValueError if unusable."""
    match = JSON_OBJECT.search(text)
    if not match:
        raise ValueError("the judge's reply has no JSON object")
    data = json.loads(match.group())
    scores = data.get("scores") or {}
    result = {}
    for label in labels:
        value = scores.get(label)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= 10:
            raise ValueError(f"no score from 1 to 10 for answer {label}")
        result[label] = round(value)
    return result, str(data.get("reason", ""))[:1000]


async def _evaluate(experiment: Experiment, prompts: list[str], judge_model: str, run: EvalRun):
    variants = await db(
        lambda: list(experiment.variants.select_related("prompt_version", "experiment"))
    )
    labels = [chr(ord("A") + i) for i in range(len(variants))]
    for index, prompt in enumerate(prompts):
        answers: dict[str, llm_calls.Completion] = {}
        for variant in variants:
            version = variant.prompt_version
            answers[variant.key] = await _complete(
                model=version.model,
                messages=[
                    {"role": "system", "content": render_prompt(version.system_prompt, None)},
                    {"role": "user", "content": prompt},
                ],
                temperature=float(version.temperature),
                max_tokens=version.max_tokens,
                variant=variant.label,
                version_id=version.pk,
            )
        # Rotate which variant is "A" from prompt to prompt, against the judge's position bias.
        order = variants[index % len(variants) :] + variants[: index % len(variants)]
        by_label = dict(zip(labels, order, strict=True))
        result = EvalResult(
            run=run,
            index=index,
            prompt=prompt,
            answers={k: a.text for k, a in answers.items()},
        )
        failed = [k for k, a in answers.items() if a.error_code]
        if failed:
            result.error = f"no answer from {', '.join(failed)} ({answers[failed[0]].error_code})"
        else:
            question = f"Question:\n{prompt}\n\n" + "\n\n".join(
                f"Answer {label}:\n{answers[v.key].text}" for label, v in by_label.items()
            )
            judged = await _complete(
                model=judge_model,
                messages=[
                    {"role": "system", "content": JUDGE_PROMPT},
                    {"role": "user", "content": question},
                ],
                temperature=0.0,
                max_tokens=300,
            )
            try:
                if judged.error_code:
                    raise ValueError(f"judge call failed ({judged.error_code})")
                scores, reason = parse_judgement(judged.text, labels)
                result.scores = {by_label[label].key: s for label, s in scores.items()}
                result.judge_reason = reason
            except (ValueError, json.JSONDecodeError) as exc:
                result.error = str(exc)[:300]
        await db(result.save)


def summarize(run: EvalRun) -> dict:
    results = list(run.results.all())
    keys = {k for r in results for k in r.answers}
    summary = {}
    for key in sorted(keys):
        scored = [r.scores[key] for r in results if key in r.scores]
        wins = sum(
            1
            for r in results
            if r.scores
            and max(r.scores.values()) == r.scores.get(key)
            and list(r.scores.values()).count(r.scores[key]) == 1
        )
        summary[key] = {
            "judged": len(scored),
            "mean_score": round(sum(scored) / len(scored), 3) if scored else None,
            "wins": wins,
        }
    return summary


def run_evaluation(experiment: Experiment, prompts_path: Path, *, judge_model: str) -> EvalRun:
    prompts = read_prompts(prompts_path)
    run = EvalRun.objects.create(
        experiment=experiment, prompts_file=str(prompts_path), judge_model=judge_model
    )
    asyncio.run(_evaluate(experiment, prompts, judge_model, run))
    run.summary = summarize(run)
    run.finished_at = timezone.now()
    run.save(update_fields=["summary", "finished_at"])
    return run
