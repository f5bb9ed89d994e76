from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.task_types import TaskType

from .histogram import LATENCY_BUCKETS_MS, N_BUCKETS

__all__ = ["LATENCY_BUCKETS_MS", "N_BUCKETS"]


class ModelPrice(models.Model):
    """A model's list price from a date on. A name ending in ``*`` matches as a prefix."""

    model = models.CharField(
        max_length=200,
        help_text="Exact model name (gpt-4o-mini), or a prefix ending in * (gpt-4o-mini*).",
    )
    input_per_million = models.DecimalField(
        "USD per 1M input tokens", max_digits=12, decimal_places=6
    )
    cached_input_per_million = models.DecimalField(
        "USD per 1M cached input tokens",
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Empty: cached tokens cost the same as other input tokens.",
    )
    output_per_million = models.DecimalField(
        "USD per 1M output tokens", max_digits=12, decimal_places=6
    )
    effective_from = models.DateField(default=timezone.localdate)
    source = models.CharField(max_length=300, help_text="Where the price comes from, and when.")

    class Meta:
        ordering = ["model", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["model", "effective_from"], name="one_price_per_day")
        ]

    def __str__(self):
        return f"{self.model} from {self.effective_from}"


class AICallQuerySet(models.QuerySet):
    def between(self, start, end):
        return self.filter(created_at__gte=start, created_at__lt=end)


class AICall(models.Model):
    """One upstream attempt, whatever its outcome. Written once, at the end of the attempt."""

    class Status(models.TextChoices):
        OK = "ok"
        ERROR = "error"
        CANCELLED = "cancelled"
        TIMEOUT = "timeout"
        RATE_LIMITED = "rate_limited"

    # ON DELETE SET NULL in the database: deleting a conversation while its reply is being
    # recorded must neither fail nor lose the call (Django's collector would race the insert).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
    )
    conversation = models.ForeignKey(
        "chat.Conversation", null=True, blank=True, on_delete=models.DB_SET_NULL, related_name="+"
    )
    message = models.ForeignKey(
        "chat.Message", null=True, blank=True, on_delete=models.DB_SET_NULL, related_name="+"
    )
    task_type = models.CharField(max_length=32, default=TaskType.CHAT)
    model = models.CharField(max_length=200)
    base_url_host = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices)
    error_code = models.CharField(max_length=64, blank=True)
    attempt = models.PositiveSmallIntegerField(default=1)
    streamed = models.BooleanField(default=True)
    input_tokens = models.PositiveIntegerField(default=0)
    cached_input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    tokens_estimated = models.BooleanField(default=False)
    # USD, computed when written from the price in effect; NULL when the model has no price.
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    # The experiment variant ("experiment/variant", "" outside experiments) and prompt version.
    variant = models.CharField(max_length=101, blank=True, default="")
    prompt_version = models.ForeignKey(
        "experiments.PromptVersion",
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
    )
    request_id = models.CharField(max_length=64, blank=True, db_index=True)
    # Made by `seed_demo` only, so that demo history can be told apart and removed.
    is_demo = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = AICallQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "AI call"
        # Seeds the quota counters of a user's day or month (analytics.quotas).
        indexes = [models.Index(fields=["user", "created_at"], name="aicall_user_created")]
        permissions = [("view_ai_dashboard", "Can view the AI usage dashboard and cost reports")]

    def __str__(self):
        return f"{self.task_type} {self.model} {self.status} @ {self.created_at:%Y-%m-%d %H:%M:%S}"


class CallRollup(models.Model):
    """Calls of one hour or one (reporting-zone) day, per model, task type, variant and status.

    Rebuilt from the raw calls of whole buckets, so an incremental update and a rebuild of the
    same range give identical rows.
    """

    class Period(models.TextChoices):
        HOUR = "hour"
        DAY = "day"

    period = models.CharField(max_length=4, choices=Period.choices)
    # Hours: the UTC hour's start. Days: the reporting zone's midnight, as an aware datetime.
    bucket_start = models.DateTimeField()
    model = models.CharField(max_length=200)
    task_type = models.CharField(max_length=32)
    variant = models.CharField(max_length=101, blank=True, default="")
    status = models.CharField(max_length=16)
    calls = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=16, decimal_places=6, default=0)
    unpriced_calls = models.PositiveIntegerField(default=0)
    latency_ms_sum = models.BigIntegerField(default=0)
    ttft_ms_sum = models.BigIntegerField(default=0)
    ttft_count = models.PositiveIntegerField(default=0)
    latency_histogram = models.JSONField(default=list)
    ttft_histogram = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["period", "bucket_start", "model", "task_type", "variant", "status"],
                name="one_rollup_per_bucket_and_key",
            )
        ]
        indexes = [models.Index(fields=["period", "bucket_start"])]

    def __str__(self):
        return f"{self.period} {self.bucket_start:%Y-%m-%d %H:%M} {self.model} {self.status}"


class UserDailyUsage(models.Model):
    """Per-user totals of a reporting-zone day, kept after raw calls expire (top-user views)."""

    day = models.DateField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.DB_CASCADE, related_name="+"
    )
    calls = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=16, decimal_places=6, default=0)
    unpriced_calls = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "user"], name="one_usage_row_per_user_day")
        ]
        indexes = [models.Index(fields=["day", "-cost_usd"])]

    def __str__(self):
        return f"{self.user_id} on {self.day}"


class RequestMinute(models.Model):
    """HTTP requests and 5xx answers of one minute, summed over every server process."""

    minute = models.DateTimeField(unique=True)
    requests = models.PositiveIntegerField(default=0)
    errors_5xx = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-minute"]

    def __str__(self):
        return f"{self.minute:%Y-%m-%d %H:%M}: {self.requests} requests, {self.errors_5xx} 5xx"


class JobState(models.Model):
    """Progress and once-a-day claims of the monitor's jobs (safe with two monitors)."""

    name = models.CharField(max_length=100, unique=True)
    value = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return self.name


def default_api_token_expiry():
    """A new token's end: ``ANALYTICS_API_TOKEN_DAYS`` from now."""
    return timezone.now() + timedelta(days=settings.ANALYTICS_API_TOKEN_DAYS)


class APIToken(models.Model):
    """A staff user's key to the read-only analytics API (docs/analytics.md, "The JSON API").

    Only the SHA-256 of the key is stored: the key itself is shown once, when a superuser creates
    it in the admin. ``prefix`` (its first characters) tells keys apart in the admin and logs.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="The staff user the token acts as (it needs the dashboard permission).",
    )
    name = models.CharField(
        max_length=100, help_text="What it is for, e.g. “Metabase” or “Ana's notebook”."
    )
    prefix = models.CharField(max_length=16, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    expires_at = models.DateTimeField(
        default=default_api_token_expiry,
        help_text="From then on the token answers 401 (at most 366 days ahead).",
    )
    last_used_at = models.DateTimeField(null=True, editable=False)
    revoked_at = models.DateTimeField(null=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "analytics API token"

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"
