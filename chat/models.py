from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from .tree import Versions


class Conversation(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.DB_CASCADE, related_name="conversations"
    )
    title = models.CharField(max_length=200, blank=True)
    # False until the model has named the conversation (the first words stand in until then).
    title_generated = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Pinned ones head the sidebar; archived ones are listed only behind its "Archived" toggle.
    pinned = models.BooleanField(default=False)
    archived = models.BooleanField(default=False)
    # The end of the branch the conversation reads along (chat.tree); None: not yet a tree
    # (no messages, or messages written directly, read in their old linear way).
    current_leaf = models.ForeignKey(
        "Message", null=True, blank=True, on_delete=models.DB_SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["user", "-updated_at"])]

    def __str__(self):
        return self.title or f"Conversation {self.pk}"

    def get_absolute_url(self):
        return reverse("chat:conversation", args=[self.pk])


class MessageQuerySet(models.QuerySet):
    def in_progress(self):
        return self.filter(status__in=Message.IN_PROGRESS)


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        PENDING = "pending"
        STREAMING = "streaming"
        COMPLETED = "completed"
        CANCELLED = "cancelled"
        FAILED = "failed"
        INTERRUPTED = "interrupted"

    IN_PROGRESS = (Status.PENDING, Status.STREAMING)

    conversation = models.ForeignKey(
        Conversation, on_delete=models.DB_CASCADE, related_name="messages"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    # For an assistant message: the user message it answers (regenerate makes a sibling).
    reply_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.DB_CASCADE, related_name="replies"
    )
    # The message this one follows (chat.tree): a reply's user message, a user message's reply
    # (None: the first). Siblings are the versions of a turn (Regenerate, Edit).
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.DB_CASCADE, related_name="children"
    )
    # When this version was last chosen among its siblings (None: when it was written).
    chosen_at = models.DateTimeField(null=True, blank=True)
    content = models.TextField(blank=True)
    html = models.TextField(blank=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.COMPLETED, db_index=True
    )
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=300, blank=True)
    model = models.CharField(max_length=200, blank=True)
    # What served the reply: the prompt version and the experiment variant ("" outside one).
    prompt_version = models.ForeignKey(
        "experiments.PromptVersion",
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
    )
    variant = models.CharField(max_length=101, blank=True)
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    tokens_estimated = models.BooleanField(default=False)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    # The channel-layer name of the process running the generation (for stop requests), and a
    # flag every process can set; the runner sees it at its next save.
    runner_channel = models.CharField(max_length=200, blank=True)
    stop_requested = models.BooleanField(default=False)
    # Saved by the runner at a bounded rate while streaming; the sweeper reads it as a heartbeat.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # When a sweeper found the heartbeat stale; the reply is interrupted only if its runner did
    # not save for CHAT_SWEEP_GRACE_SECONDS after that (chat.lifecycle.sweep_stale_replies).
    stale_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = MessageQuerySet.as_manager()

    # Not a column: "up", "down" or "" for the chat page (chat.selectors.visible_messages).
    feedback_rating: str
    # Not a column: this message's siblings, the versions of its turn (chat.tree.Versions).
    versions: "Versions"

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["conversation", "created_at"])]
        constraints = [
            # At most one reply in progress per conversation, enforced by the database.
            models.UniqueConstraint(
                fields=["conversation"],
                condition=models.Q(status__in=["pending", "streaming"]),
                name="one_reply_in_progress_per_conversation",
            )
        ]

    def __str__(self):
        return f"{self.role} #{self.pk} ({self.status})"

    @property
    def in_progress(self) -> bool:
        return self.status in self.IN_PROGRESS

    @property
    def tokens_per_second(self) -> float | None:
        if not self.output_tokens or not self.latency_ms or self.ttft_ms is None:
            return None
        generating_ms = max(self.latency_ms - self.ttft_ms, 1)
        return round(self.output_tokens * 1000 / generating_ms, 1)
