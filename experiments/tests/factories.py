"""Factories for experiments tests: prompt versions and a two-variant canary."""

from decimal import Decimal
from typing import NamedTuple

from experiments import services
from experiments.models import Experiment, PromptVersion, Variant

PROMPT = "chat-system"


def make_version(
    system_prompt: str = "You are helpful.",
    *,
    model: str = "gpt-4o-mini",
    name: str = PROMPT,
    temperature: str = "0.5",
    max_tokens: int = 100,
    live: bool = False,
) -> PromptVersion:
    """A new version of the prompt ``name`` (through the service, numbered like the admin's)."""
    version = services.new_prompt_version(
        name=name,
        system_prompt=system_prompt,
        model=model,
        temperature=Decimal(temperature),
        max_tokens=max_tokens,
    )
    if live:
        services.make_live(version=version)
    return version


class Canary(NamedTuple):
    experiment: Experiment
    control: PromptVersion
    treatment: PromptVersion


def make_canary(
    *,
    control: PromptVersion | None = None,
    treatment: PromptVersion | None = None,
    key: str = "canary",
    prompt_name: str = PROMPT,
    weights: tuple[int, int] = (50, 50),
    start: bool = False,
    **experiment_fields,
) -> Canary:
    """An experiment on ``prompt_name`` with a control and a treatment variant (new versions
    when not given; the control live), started when ``start``."""
    control = control or make_version("Control prompt.", name=prompt_name, live=True)
    treatment = treatment or make_version("Treatment prompt.", model="gpt-4o", name=prompt_name)
    experiment = Experiment.objects.create(key=key, prompt_name=prompt_name, **experiment_fields)
    Variant.objects.create(
        experiment=experiment,
        key="control",
        prompt_version=control,
        weight=weights[0],
        is_control=True,
    )
    Variant.objects.create(
        experiment=experiment, key="experiment", prompt_version=treatment, weight=weights[1]
    )
    if start:
        services.start_experiment(experiment=experiment)
    return Canary(experiment, control, treatment)
