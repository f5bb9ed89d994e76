from django.conf import settings
from django.db import models
from django.utils import timezone


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
    task_type = models.CharField(max_length=32, default="chat")
    model = models.CharField(max_length=200)
    base_url_host = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices)
    error_code = models.CharField(max_length=64, blank=True)
    attempt = models.PositiveSmallIntegerField(default=1)
    streamed = models.BooleanField(default=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    tokens_estimated = models.BooleanField(default=False)
    latency_ms = models.PositiveIntegerField(default=0)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "AI call"

    def __str__(self):
        return f"{self.task_type} {self.model} {self.status} @ {self.created_at:%Y-%m-%d %H:%M:%S}"
