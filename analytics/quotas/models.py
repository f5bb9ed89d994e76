"""Quotas, their refusals, and the database backend's counters and reservations (docs/quotas.md).

The tables keep the names they had while these models lived in ``analytics`` (``analytics_*``):
the move to this app changed Django's state only, not the database.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone


class UsageQuota(models.Model):
    """Limits of one user or of one group, over the settings' defaults (docs/quotas.md).

    A blank limit inherits: a user's own row first, then the most generous of their groups' rows,
    then the ``QUOTA_*`` settings. Holders of ``quotas.exempt_from_quotas`` skip per-user limits
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
        db_table = "analytics_usagequota"
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
        db_table = "analytics_quotaevent"
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

    class Meta:
        db_table = "analytics_quotacounter"

    def __str__(self):
        return f"{self.key} = {self.value}"


class QuotaReservation(models.Model):
    """The database backend's open reservations: the worst case of a call in flight."""

    id = models.CharField(primary_key=True, max_length=200)
    amounts = models.JSONField(default=dict)
    expires_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "analytics_quotareservation"

    def __str__(self):
        return self.id
