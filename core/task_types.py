"""What an upstream AI call was made for: recorded on every call, a label of every metric."""

from django.db import models


class TaskType(models.TextChoices):
    CHAT = "chat", "chat reply"
    TITLE = "title", "conversation title"
    EVAL = "eval", "evaluation"
