import secrets

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone


class PromptVersion(models.Model):
    """One version of a named prompt with its model and parameters.

    A version that has served a call is immutable: editing it makes a new version. Each name has
    at most one ``live`` version, which serves everyone not in a running experiment.
    """

    name = models.SlugField(max_length=50, help_text="The prompt's name, e.g. chat-system.")
    version = models.PositiveIntegerField()
    system_prompt = models.TextField(
        help_text="Variables: {user_name} (the user's name) and {today} (YYYY-MM-DD)."
    )
    model = models.CharField(max_length=200)
    temperature = models.DecimalField(max_digits=3, decimal_places=2, default=0.7)
    max_tokens = models.PositiveIntegerField(default=1024)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
    )
    notes = models.TextField(blank=True)
    is_live = models.BooleanField(default=False)
    # Set the first time the version serves a call; from then on it is never edited.
    first_served_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="unique_prompt_version"),
            models.UniqueConstraint(
                fields=["name"],
                condition=models.Q(is_live=True),
                name="one_live_version_per_prompt",
            ),
        ]

    def __str__(self):
        return f"{self.name} v{self.version}"

    @property
    def has_served(self) -> bool:
        return self.first_served_at is not None


def new_salt() -> str:
    return secrets.token_hex(8)


class Experiment(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        RUNNING = "running"
        PAUSED = "paused"
        COMPLETED = "completed"

    key = models.SlugField(max_length=50, unique=True)
    description = models.TextField(blank=True)
    prompt_name = models.SlugField(
        max_length=50, help_text="The prompt whose versions this experiment compares."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    salt = models.CharField(max_length=32, default=new_salt, help_text="Never change it mid-run.")
    traffic_percent = models.DecimalField(
        max_digits=5, decimal_places=2, default=10, help_text="Share of users enrolled, 0-100."
    )
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Guardrails: a treatment worse than the control by these margins, with enough calls, is
    # paused automatically by `monitor`.
    guardrail_error_rate_margin = models.DecimalField(
        max_digits=5, decimal_places=4, default=0.05, help_text="Absolute, e.g. 0.05 = 5 points."
    )
    guardrail_cost_margin = models.DecimalField(
        max_digits=6, decimal_places=4, default=0.5, help_text="Relative, e.g. 0.5 = 50% dearer."
    )
    guardrail_min_calls = models.PositiveIntegerField(default=100)
    # Set when `monitor` paused the experiment because a guardrail tripped.
    paused_by_guardrail_at = models.DateTimeField(null=True, blank=True)
    guardrail_reason = models.CharField(max_length=300, blank=True)
    min_sample = models.PositiveIntegerField(
        default=100, help_text="Below this many calls per variant the comparison gives no verdict."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["prompt_name"],
                condition=models.Q(status="running"),
                name="one_running_experiment_per_prompt",
            ),
            models.CheckConstraint(
                condition=models.Q(traffic_percent__gte=0, traffic_percent__lte=100),
                name="traffic_is_a_percentage",
            ),
        ]

    def __str__(self):
        return self.key


class Variant(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    key = models.SlugField(max_length=50, help_text="e.g. control, experiment")
    # The database refuses to delete a version a variant uses (ON DELETE NO ACTION).
    prompt_version = models.ForeignKey(PromptVersion, on_delete=models.DO_NOTHING, related_name="+")
    weight = models.PositiveIntegerField(default=50, validators=[MinValueValidator(1)])
    is_control = models.BooleanField(default=False)

    class Meta:
        ordering = ["-is_control", "key"]
        constraints = [
            # A zero weight would make every assignment of the experiment fail.
            models.CheckConstraint(
                condition=models.Q(weight__gte=1), name="variant_weight_positive"
            ),
            models.UniqueConstraint(fields=["experiment", "key"], name="unique_variant_key"),
            models.UniqueConstraint(
                fields=["experiment"],
                condition=models.Q(is_control=True),
                name="one_control_per_experiment",
            ),
        ]

    def __str__(self):
        return f"{self.experiment.key}/{self.key}"

    @property
    def label(self) -> str:
        """How calls and messages record the variant: ``experiment-key/variant-key``."""
        return f"{self.experiment.key}/{self.key}"


class Exposure(models.Model):
    """The first time a user was served by a running experiment (once per user and experiment)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="exposures")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    variant = models.CharField(max_length=50)
    first_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "user"], name="one_exposure_per_user")
        ]

    def __str__(self):
        return f"{self.user_id} in {self.experiment_id}/{self.variant}"


class Feedback(models.Model):
    """A thumbs up or down on an assistant reply, by its owner; the satisfaction metric."""

    class Rating(models.IntegerChoices):
        UP = 1
        DOWN = -1

    # Deleted with its message, in the database (messages go with their conversation there).
    message = models.OneToOneField(
        "chat.Message", on_delete=models.DB_CASCADE, related_name="feedback"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.DB_CASCADE, related_name="+"
    )
    rating = models.SmallIntegerField(choices=Rating.choices)
    comment = models.TextField(blank=True, max_length=2000)
    # Copied from the message, so comparisons need no join through chat.
    variant = models.CharField(max_length=101, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["variant"])]

    def __str__(self):
        return f"{'+' if self.rating > 0 else '-'} on {self.message_id}"


class EvalRun(models.Model):
    """One run of ``manage.py eval_prompts``: every variant on a fixed list of prompts, judged."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="eval_runs")
    prompts_file = models.CharField(max_length=300)
    judge_model = models.CharField(max_length=200)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Per variant: {"key": {"judged": n, "mean_score": x, "wins": n}}.
    summary = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self):
        return f"eval of {self.experiment.key} at {self.started_at:%Y-%m-%d %H:%M}"


class EvalResult(models.Model):
    run = models.ForeignKey(EvalRun, on_delete=models.CASCADE, related_name="results")
    index = models.PositiveIntegerField()
    prompt = models.TextField()
    answers = models.JSONField(default=dict)  # variant key -> answer text
    scores = models.JSONField(default=dict)  # variant key -> 1..10 (missing when unjudged)
    judge_reason = models.TextField(blank=True)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["run", "index"]

    def __str__(self):
        return f"{self.run_id} #{self.index}"
