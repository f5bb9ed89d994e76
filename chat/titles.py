"""The title call after a conversation's first exchange (task type ``title``).

Transient faults are retried like a reply's attempts (``AI_MAX_RETRIES``, the same back-off),
each attempt recorded as its own AICall; the first words of the message stay the title if every
attempt fails. The call goes the one call path (``analytics.quotas.llm_calls.complete``).
"""

import logging

from django.conf import settings

from analytics.quotas import llm_calls
from core.db_thread import db
from core.task_types import TaskType
from experiments.config import resolve_config

from . import finishing, services

logger = logging.getLogger(__name__)


def _title_request(text: str) -> tuple:
    """Return the title call's config and messages (settings only: no database, no thread)."""
    config = resolve_config(None, "title")
    messages = [
        {"role": "system", "content": config.system_prompt},
        {"role": "user", "content": text[:2000]},
    ]
    return config, messages


async def name_conversation(plan: services.ReplyPlan, request_id: str) -> None:
    """Ask the model for a short title; the first words stay on failure."""
    fallback = services.fallback_title(plan.first_user_text)
    try:
        config, messages = _title_request(plan.first_user_text)
        answer = await llm_calls.complete(
            task_type=TaskType.TITLE,
            model=config.model,
            messages=messages,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            refusal_stage="title",
            user_id=plan.user_id,
            limits=plan.limits,  # the user's, as the reply was admitted with
            variant=config.variant,
            request_id=request_id,
            conversation_id=plan.conversation_id,
            retries=settings.AI_MAX_RETRIES,
            # Each attempt's record is retried until it lands, like a reply's.
            record=finishing.record_attempt,
        )
    except Exception:
        logger.warning("could not start the title of %s", plan.conversation_id, exc_info=True)
        return
    if not answer.text or answer.cancelled:
        return  # the first words stay the title (quota refused, every attempt failed, stop)
    try:
        await db(
            services.set_generated_title,
            plan.conversation_id,
            title=answer.text,
            fallback=fallback,
        )
    except Exception:
        logger.warning(
            "could not store the title of conversation %s", plan.conversation_id, exc_info=True
        )
