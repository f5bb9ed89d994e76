"""Alert rules, their events and the channels that notify them (docs/alerts.md).

The tables keep the names they had while these models lived in ``analytics`` (``analytics_*``):
the move to this app changed Django's state only, not the database.
"""

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.formatting import (
    format_count,
    format_money,
    format_number,
    format_rate,
    format_ratio,
    format_seconds,
)


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

    class Meta:
        db_table = "analytics_notificationchannel"

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
        db_table = "analytics_alertrule"
        ordering = ["name"]

    def __str__(self):
        return self.name

    def breached(self, value) -> bool:
        """Strict comparison: a value exactly at the threshold does not fire."""
        if self.comparison == self.Comparison.LESS:
            return value < self.threshold
        return value > self.threshold

    # Each metric's unit, as its values and threshold are shown (rates are stored as ratios,
    # latency in seconds): never a bare 0.717949.
    UNIT_FORMATS: dict[str, Callable[[Any], str]] = {
        Metric.SUCCESS_RATE: format_rate,
        Metric.HTTP_ERROR_RATE: format_rate,
        Metric.AVG_LATENCY: format_seconds,
        Metric.DAILY_COST: format_money,
        Metric.DAILY_TOKENS_RATIO: format_ratio,
        Metric.EXPERIMENT_GUARDRAIL: format_count,
    }
    THRESHOLD_HELP: dict[str, str] = {
        Metric.SUCCESS_RATE: "a ratio: 0.95 means 95%",
        Metric.HTTP_ERROR_RATE: "a ratio: 0.05 means 5%",
        Metric.AVG_LATENCY: "seconds: 10 means 10 s",
        Metric.DAILY_COST: "US dollars: 10 means $10.00",
        Metric.DAILY_TOKENS_RATIO: "a multiple of the trailing daily average: 3 means three times",
        Metric.EXPERIMENT_GUARDRAIL: "a count of experiments: 0 fires on the first one",
    }

    def format_value(self, value) -> str:
        """Return ``value`` in the metric's unit: ``71.79%``, ``850 ms``, ``$12.30``, ``3x``."""
        return self.UNIT_FORMATS.get(self.metric, format_number)(value)

    @property
    def condition(self) -> str:
        """When the rule fires, in the metric's unit: ``< 95%``."""
        return f"{self.get_comparison_display()} {self.format_value(self.threshold)}"


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
        db_table = "analytics_alertevent"
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

    @property
    def value_display(self) -> str:
        return self.rule.format_value(self.value)

    @property
    def threshold_display(self) -> str:
        return self.rule.format_value(self.threshold)

    @property
    def condition(self) -> str:
        """The condition as it stood when the event fired (the rule's threshold may change)."""
        return f"{self.rule.get_comparison_display()} {self.threshold_display}"
