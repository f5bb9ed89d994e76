"""What the chat runner asks this app: which model, prompt and parameters serve a request.

``resolve_config`` is the app's surface for the chat runner: a running experiment on the chat
prompt enrols a stable share of users (``experiments.bucketing``) and serves each its variant's
prompt version; everyone else gets the prompt's live version, or the settings' defaults when the
prompt has no version yet.
"""

import re
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.localcache import LocalCache
from core.task_types import TaskType

from .bucketing import assign
from .models import Experiment, Exposure, PromptVersion, Variant

# What serves a prompt: its running experiment with the variants' versions, and its live version.
# Kept per process (core/localcache.py): two SQL statements fewer per posted message. Saves
# and deletes of the three models empty it through signals; the QuerySet.update()s that change
# them (experiments.services, guardrails, the admin, _from_version) call SERVING.changed().
SERVING = LocalCache("serving")


@dataclass(frozen=True, slots=True)
class Serving:
    experiment: Experiment | None
    variants: tuple[Variant, ...]
    live: PromptVersion | None


def serving(name: str) -> Serving:
    return SERVING.get(name, lambda: _read_serving(name))


def _read_serving(name: str) -> Serving:
    experiment = (
        Experiment.objects.filter(prompt_name=name, status=Experiment.Status.RUNNING)
        .prefetch_related("variants__prompt_version")
        .first()
    )
    variants = tuple(experiment.variants.all()) if experiment is not None else ()
    live = PromptVersion.objects.filter(name=name, is_live=True).first()
    return Serving(experiment, variants, live)


@dataclass(frozen=True, slots=True)
class ChatConfig:
    model: str
    system_prompt: str
    temperature: float
    max_tokens: int
    prompt_version_id: int | None = None
    variant: str = ""


TITLE_PROMPT = (
    "Write a title of at most six words for a conversation that starts with the user's message "
    "below. Reply with the title only, no quotes."
)


_VARIABLE = re.compile(r"\{(user_name|today)\}")


def render_prompt(template: str, user) -> str:
    """Fill {user_name} and {today}; everything else (JSON, code, other braces) stays as written."""
    name = (user.get_full_name() or user.get_username()) if user is not None else ""
    values = {"user_name": name, "today": timezone.localdate().isoformat()}
    return _VARIABLE.sub(lambda match: values[match.group(1)], template)


def _from_version(version: PromptVersion, user, *, variant: str = "") -> ChatConfig:
    if version.first_served_at is None:
        # From now on the version is immutable (editing it makes a new version). Until this
        # stamp it could be edited in place (the admin, on any process), so serve the row as it
        # is stored now, not the copy this process read earlier: what is served is what stays.
        PromptVersion.objects.filter(pk=version.pk, first_served_at__isnull=True).update(
            first_served_at=timezone.now()
        )
        version = PromptVersion.objects.get(pk=version.pk)
        SERVING.changed()  # the cached version says it never served: once is enough
    return ChatConfig(
        model=version.model,
        system_prompt=render_prompt(version.system_prompt, user),
        temperature=float(version.temperature),
        max_tokens=version.max_tokens,
        prompt_version_id=version.pk,
        variant=variant,
    )


def record_exposure(experiment: Experiment, user, variant_key: str) -> None:
    """Record the first time ``user`` is served by ``experiment`` (once, even when racing)."""
    if Exposure.objects.filter(experiment=experiment, user=user).exists():
        return
    try:
        with transaction.atomic():
            Exposure.objects.create(experiment=experiment, user=user, variant=variant_key)
    except IntegrityError:
        pass  # another request recorded it a moment ago


def resolve_config(user, task_type: str) -> ChatConfig:
    """Return the configuration that serves ``user`` for ``task_type``."""
    if task_type == TaskType.TITLE:
        return ChatConfig(
            model=settings.AI_TITLE_MODEL,
            system_prompt=TITLE_PROMPT,
            temperature=0.2,
            max_tokens=20,
        )
    now_serving = serving(settings.CHAT_PROMPT_NAME)
    experiment, variants = now_serving.experiment, now_serving.variants
    if experiment is not None and user is not None:
        key = (
            assign(
                experiment.salt,
                user.pk,
                float(experiment.traffic_percent),
                [(v.key, float(v.weight)) for v in variants],
            )
            if variants
            else None
        )
        if key is not None:
            variant = next(v for v in variants if v.key == key)
            record_exposure(experiment, user, key)
            return _from_version(variant.prompt_version, user, variant=variant.label)
    if now_serving.live is not None:
        return _from_version(now_serving.live, user)
    return ChatConfig(
        model=settings.AI_MODEL,
        system_prompt=render_prompt(settings.AI_SYSTEM_PROMPT, user),
        temperature=settings.AI_TEMPERATURE,
        max_tokens=settings.AI_MAX_OUTPUT_TOKENS,
    )
