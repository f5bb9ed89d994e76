"""Writes of the experiments app: feedback, prompt versions, and an experiment's life cycle."""

from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from core.errors import AppError
from core.user_text import unstorable

from .config import SERVING
from .models import Experiment, Feedback, PromptVersion

RATINGS = {"up": 1, "down": -1, 1: 1, -1: -1}
MAX_COMMENT_CHARS = 2000


class ExperimentError(AppError):
    """A request the experiments app refuses; ``status`` is the HTTP status to answer with."""


def rate_reply(*, message, user, rating, comment: str | None = None) -> Feedback:
    """Set (or change) ``user``'s thumbs up/down on an assistant reply they own.

    The chat checks that ``message`` is a finished reply (``chat.services.check_rateable``).
    Without a ``comment`` the existing one is kept (changing the thumb keeps what was said).
    """
    # Only a string or an integer can be a rating (a list is not even a key: TypeError).
    hashable = isinstance(rating, str | int) and not isinstance(rating, bool)
    value = RATINGS.get(rating) if hashable else None
    if value is None:
        raise ExperimentError('\'rating\' must be "up" or "down".', code="invalid_rating")
    if comment is None:
        existing = Feedback.objects.filter(message=message).values_list("comment", flat=True)
        comment = existing.first() or ""
    if not isinstance(comment, str):
        raise ExperimentError("'comment' must be a string.", code="invalid_comment")
    reason = unstorable(comment)
    if reason:
        raise ExperimentError(f"'comment' {reason}.", code="invalid_input", field="comment")
    comment = comment.strip()
    if len(comment) > MAX_COMMENT_CHARS:
        raise ExperimentError(
            f"The comment is longer than {MAX_COMMENT_CHARS} characters.", code="invalid_comment"
        )
    feedback, _ = Feedback.objects.update_or_create(
        message=message,
        defaults={
            "user": user,
            "rating": value,
            "comment": comment,
            "variant": message.variant,
            "updated_at": timezone.now(),
        },
    )
    return feedback


def remove_feedback(*, message) -> None:
    """Take back the rating of ``message`` (nothing happens if there is none)."""
    Feedback.objects.filter(message=message).delete()


@transaction.atomic
def new_prompt_version(
    *,
    name: str,
    system_prompt: str,
    model: str,
    temperature,
    max_tokens: int,
    author=None,
    notes: str = "",
) -> PromptVersion:
    """Create the next version of prompt ``name``."""
    latest = PromptVersion.objects.select_for_update().filter(name=name).aggregate(v=Max("version"))
    return PromptVersion.objects.create(
        name=name,
        version=(latest["v"] or 0) + 1,
        system_prompt=system_prompt,
        model=model,
        temperature=temperature,
        max_tokens=max_tokens,
        author=author,
        notes=notes,
    )


def edit_unserved_version(*, version: PromptVersion, fields: dict[str, object]) -> bool:
    """Change ``version`` in place if it has not served a call yet; return whether it did.

    Conditional, so a version that served a call since the form was read is never touched.
    """
    if PromptVersion.objects.filter(pk=version.pk, first_served_at__isnull=True).update(**fields):
        SERVING.changed()
        return True
    return False


@transaction.atomic
def make_live(*, version: PromptVersion) -> None:
    """Make ``version`` the live version of its prompt (the previous one stops being live)."""
    PromptVersion.objects.filter(name=version.name, is_live=True).exclude(pk=version.pk).update(
        is_live=False
    )
    PromptVersion.objects.filter(pk=version.pk).update(is_live=True)
    SERVING.changed()


def _transition(experiment: Experiment, allowed: tuple[str, ...], status: str, **fields) -> None:
    if experiment.status not in allowed:
        raise ExperimentError(
            f"Experiment {experiment.key} is {experiment.status}; this needs it "
            f"{' or '.join(allowed)}.",
            code="invalid_transition",
            status=409,
        )
    updated = Experiment.objects.filter(pk=experiment.pk, status=experiment.status).update(
        status=status, **fields
    )
    if not updated:
        raise ExperimentError("The experiment changed meanwhile; reload.", status=409)
    SERVING.changed()
    experiment.refresh_from_db()


def start_experiment(*, experiment: Experiment) -> None:
    variants = list(experiment.variants.all())
    if sum(1 for v in variants if v.is_control) != 1 or len(variants) < 2:
        raise ExperimentError(
            "An experiment needs one control and at least one treatment.", code="invalid_variants"
        )

    try:
        with transaction.atomic():
            _transition(
                experiment,
                (Experiment.Status.DRAFT,),
                Experiment.Status.RUNNING,
                started_at=timezone.now(),
            )
    except IntegrityError as exc:
        raise ExperimentError(
            f"Another experiment on prompt {experiment.prompt_name!r} is running.",
            code="one_running_per_prompt",
            status=409,
        ) from exc


def pause_experiment(*, experiment: Experiment) -> None:
    """Send everyone to the live version; assignments are kept (they are a pure function)."""
    _transition(experiment, (Experiment.Status.RUNNING,), Experiment.Status.PAUSED)


def resume_experiment(*, experiment: Experiment) -> None:

    try:
        with transaction.atomic():
            _transition(
                experiment,
                (Experiment.Status.PAUSED,),
                Experiment.Status.RUNNING,
                paused_by_guardrail_at=None,
                guardrail_reason="",
            )
    except IntegrityError as exc:
        raise ExperimentError(
            f"Another experiment on prompt {experiment.prompt_name!r} is running.",
            code="one_running_per_prompt",
            status=409,
        ) from exc


def set_traffic(*, experiment: Experiment, percent: object) -> None:
    try:
        value = Decimal(str(percent))
    except (InvalidOperation, ValueError):
        raise ExperimentError(f"Traffic must be a number, not {percent!r}.") from None
    if not value.is_finite() or not Decimal(0) <= value <= Decimal(100):
        raise ExperimentError("Traffic must be between 0 and 100 percent.")
    Experiment.objects.filter(pk=experiment.pk).update(traffic_percent=value)
    SERVING.changed()
    experiment.refresh_from_db()


@transaction.atomic
def complete_experiment(*, experiment: Experiment, promote: str | None) -> None:
    """End the experiment; ``promote`` names the variant whose prompt version becomes live
    (None rolls back: the live version stays as it was)."""
    if experiment.status == Experiment.Status.COMPLETED:
        raise ExperimentError("The experiment is already completed.", status=409)
    if promote is not None:
        variant = experiment.variants.filter(key=promote).select_related("prompt_version").first()
        if variant is None:
            raise ExperimentError(f"No variant {promote!r} in {experiment.key}.")
        make_live(version=variant.prompt_version)
    _transition(
        experiment,
        (Experiment.Status.DRAFT, Experiment.Status.RUNNING, Experiment.Status.PAUSED),
        Experiment.Status.COMPLETED,
        ended_at=timezone.now(),
    )
