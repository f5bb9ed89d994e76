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


class NotificationChannel(models.Model):
    """Where alert notifications go: an email list, or a webhook in one of several formats."""

    class Kind(models.TextChoices):
        EMAIL = "email"
        WEBHOOK = "webhook"

    class Format(models.TextChoices):
        GENERIC = "generic", "Generic JSON"
        SLACK = "slack", "Slack"
        FEISHU = "feishu", "Feishu (Lark)"
        DINGTALK = "dingtalk", "DingTalk"
        WECOM = "wecom", "WeCom"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # The URL often carries a secret token: it is never logged or shown in full.
    url = models.URLField(max_length=1000, blank=True)
    format = models.CharField(max_length=10, choices=Format.choices, default=Format.GENERIC)
    recipients = models.TextField(
        blank=True,
        help_text="Email addresses, one per line or comma-separated. Empty: active staff "
        "with the dashboard permission.",
    )
    enabled = models.BooleanField(default=True)

    def __str__(self):
        return f"{self.name} ({self.get_kind_display()})"

    def clean(self):
        from django.core.exceptions import ValidationError

        from .webhook_address import UnsafeWebhookAddress, check_url

        if self.kind == self.Kind.WEBHOOK and not self.url:
            raise ValidationError({"url": "A webhook channel needs a URL."})
        if self.kind == self.Kind.WEBHOOK:
            try:
                check_url(self.url)
            except UnsafeWebhookAddress as exc:
                raise ValidationError({"url": str(exc)}) from exc


class AlertRule(models.Model):
    class Metric(models.TextChoices):
        SUCCESS_RATE = "success_rate", "AI call success rate"
        AVG_LATENCY = "avg_latency_seconds", "Average AI response time (s)"
        DAILY_TOKENS_RATIO = "daily_tokens_ratio", "Daily tokens / trailing daily average"
        DAILY_COST = "daily_cost_usd", "Daily cost (USD)"
        HTTP_ERROR_RATE = "http_error_rate", "HTTP 5xx rate of the app"
        EXPERIMENT_GUARDRAIL = "experiment_guardrail", "Experiments paused by a guardrail"

    class Comparison(models.TextChoices):
        LESS = "lt", "<"
        GREATER = "gt", ">"

    name = models.CharField(max_length=100, unique=True)
    metric = models.CharField(max_length=32, choices=Metric.choices)
    comparison = models.CharField(max_length=2, choices=Comparison.choices)
    threshold = models.DecimalField(max_digits=14, decimal_places=4)
    window_minutes = models.PositiveIntegerField(
        default=60,
        help_text="Rolling window of rate and latency rules, rounded out to whole hours for AI "
        "calls (minutes for HTTP requests). Daily rules look at the day so far.",
    )
    min_samples = models.PositiveIntegerField(
        default=20, help_text="Fewer calls (or requests) than this in the window: no verdict."
    )
    baseline_days = models.PositiveIntegerField(
        default=7, help_text="Tokens rule: complete days averaged for the baseline."
    )
    min_history_days = models.PositiveIntegerField(
        default=3, help_text="Tokens rule: fewer days with calls in the baseline: no verdict."
    )
    cooldown_minutes = models.PositiveIntegerField(
        default=60, help_text="A rule that stays bad notifies again only after this long."
    )
    likely_cause = models.CharField(max_length=300, blank=True)
    channels = models.ManyToManyField(NotificationChannel, blank=True, related_name="rules")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def breached(self, value) -> bool:
        """Strict comparison: a value exactly at the threshold does not fire."""
        if self.comparison == self.Comparison.LESS:
            return value < self.threshold
        return value > self.threshold


class AlertEvent(models.Model):
    class State(models.TextChoices):
        FIRING = "firing"
        RESOLVED = "resolved"

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="events")
    state = models.CharField(max_length=10, choices=State.choices, default=State.FIRING)
    value = models.DecimalField(max_digits=18, decimal_places=6)
    threshold = models.DecimalField(max_digits=14, decimal_places=4)
    samples = models.PositiveIntegerField(default=0)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    started_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    last_notified_at = models.DateTimeField(null=True, blank=True)
    notifications = models.JSONField(default=list, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            # One firing event per rule, even with two monitors evaluating at once.
            models.UniqueConstraint(
                fields=["rule"],
                condition=models.Q(state="firing"),
                name="one_firing_event_per_rule",
            )
        ]

    def __str__(self):
        return f"{self.rule} {self.state} since {self.started_at:%Y-%m-%d %H:%M}"


class UsageQuota(models.Model):
    """Limits of one user or of one group, over the settings' defaults (docs/quotas.md).

    A blank limit inherits: a user's own row first, then the most generous of their groups' rows,
    then the ``QUOTA_*`` settings. Holders of ``analytics.exempt_from_quotas`` skip per-user limits
    (the global daily cap still applies to everyone).
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DB_CASCADE,
        related_name="usage_quota",
    )
    group = models.OneToOneField(
        "auth.Group",
        null=True,
        blank=True,
        on_delete=models.DB_CASCADE,
        related_name="usage_quota",
    )
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_day = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Input plus output tokens per reporting-zone day."
    )
    cost_per_day_usd = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    cost_per_month_usd = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    note = models.CharField(max_length=300, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "usage quota"
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(user__isnull=False, group__isnull=True)
                    | models.Q(user__isnull=True, group__isnull=False)
                ),
                name="usage_quota_for_a_user_or_a_group",
            )
        ]
        permissions = [
            ("exempt_from_quotas", "Is exempt from per-user AI quotas and rate limits"),
        ]

    def __str__(self):
        return f"quota of user {self.user}" if self.user_id else f"quota of group {self.group}"


class QuotaEvent(models.Model):
    """A request or a generation refused by a limit (counted by user and limit in the admin)."""

    class Limit(models.TextChoices):
        REQUESTS_PER_MINUTE = "requests_per_minute"
        TOKENS_PER_DAY = "tokens_per_day"
        COST_PER_DAY = "cost_per_day"
        COST_PER_MONTH = "cost_per_month"
        GLOBAL_DAILY_COST = "global_daily_cost"

    class Stage(models.TextChoices):
        REQUEST = "request", "when the message was posted"
        GENERATION = "generation", "when the generation started"
        TITLE = "title", "title generation (skipped)"
        EVALUATION = "evaluation", "evaluation run call (skipped)"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
    )
    limit = models.CharField(max_length=32, choices=Limit.choices)
    stage = models.CharField(max_length=16, choices=Stage.choices)
    # Tokens or USD, as the limit counts; ``requested`` is what did not fit.
    used = models.DecimalField(max_digits=18, decimal_places=6)
    requested = models.DecimalField(max_digits=18, decimal_places=6)
    allowed = models.DecimalField(max_digits=18, decimal_places=6)
    resets_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "quota event"

    def __str__(self):
        return f"{self.limit} reached by {self.user_id} at {self.created_at:%Y-%m-%d %H:%M}"


class QuotaCounter(models.Model):
    """The database backend's counters (Redis holds them when ``REDIS_URL`` is set).

    ``value`` is recorded usage plus open reservations in tokens or micro-dollars; ``hits`` is the
    sliding log of a rate limit, ``[epoch seconds, member]`` pairs (a member is one request's
    slot, so that a refused request gives back its own).
    """

    key = models.CharField(max_length=200, unique=True)
    value = models.BigIntegerField(default=0)
    hits = models.JSONField(default=list)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self):
        return f"{self.key} = {self.value}"


class QuotaReservation(models.Model):
    """The database backend's open reservations: the worst case of a call in flight."""

    id = models.CharField(primary_key=True, max_length=200)
    amounts = models.JSONField(default=dict)
    expires_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return self.id
