"""What the chat runner asks this app: which model, prompt and parameters serve a request."""

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True, slots=True)
class ChatConfig:
    model: str
    system_prompt: str
    temperature: float
    max_tokens: int
    prompt_version_id: int | None = None
    variant: str = ""


def resolve_config(user, task_type: str) -> ChatConfig:
    """Return the configuration that serves ``user`` for ``task_type``.

    Until prompt versions and experiments exist, everyone gets the settings' defaults.
    """
    if task_type == "title":
        return ChatConfig(
            model=settings.AI_TITLE_MODEL,
            system_prompt=(
                "Write a title of at most six words for a conversation that starts with the "
                "user's message below. Reply with the title only, no quotes."
            ),
            temperature=0.2,
            max_tokens=20,
        )
    return ChatConfig(
        model=settings.AI_MODEL,
        system_prompt=settings.AI_SYSTEM_PROMPT,
        temperature=settings.AI_TEMPERATURE,
        max_tokens=settings.AI_MAX_OUTPUT_TOKENS,
    )
