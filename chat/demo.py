"""The chat's demo data (``seed_demo`` only, through ``core.demo``): the demo user's welcome
conversation, and the running canary (the brief's example): 10% of users get gpt-4o with prompt
v2 ("experiment"), the rest gpt-4o-mini with prompt v1 ("control"), with their conversations,
calls and feedback. The chat seeds it as the layer above experiments and analytics."""

import random
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from analytics.models import AICall
from analytics.pricing import cost_of, price_for
from analytics.rollups import rollup_range
from analytics.timezones import local_day
from core.task_types import TaskType
from experiments import services
from experiments.bucketing import assign
from experiments.models import Experiment, Exposure, Feedback, PromptVersion, Variant

from .models import Conversation, Message
from .rendering import render_markdown

WELCOME = """Welcome! This is a **demo** conversation.

- Replies stream token by token from {source}.
- Try a fault from the composer: add `[sim:status=429]`, `[sim:stall]` or `[sim:disconnect]`
  to a message to see how errors look.
- Staff pages: the Django admin at `/admin/`.
"""

V1 = "You are a helpful assistant. Answer in Markdown. The user's name is {user_name}."
V2 = (
    "You are a helpful, concise assistant. Answer in Markdown, lead with the answer, then the "
    "details. The user's name is {user_name}; today is {today}."
)
KEY = "canary-gpt-4o"


def seed_welcome(*, user, others) -> str:
    """Give the demo user a first conversation, once."""
    if Conversation.objects.filter(user=user).exists():
        return ""
    conversation = Conversation.objects.create(
        user=user, title="Welcome (demo)", title_generated=True
    )
    question = Message.objects.create(
        conversation=conversation, role=Message.Role.USER, content="What can I do here?"
    )
    source = "the built-in simulator" if settings.AI_USING_SIMULATOR else settings.AI_BASE_URL
    text = WELCOME.format(source=source)
    Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        reply_to=question,
        content=text,
        html=render_markdown(text),
        status=Message.Status.COMPLETED,
        model="demo",
    )
    return ""


def seed_demo_canary(*, user, others) -> str:
    exposed = seed_canary()
    if not exposed:
        return ""
    return f"Demo canary experiment '{KEY}' running at 10%: {exposed} users exposed."


def seed_canary(*, users_wanted: int = 40, seed: int = 7) -> int:
    """Create the experiment with exposures, replies, calls and feedback once; return exposures."""
    if Experiment.objects.filter(key=KEY).exists():
        return 0
    rng = random.Random(seed)  # noqa: S311 (demo data)
    v1 = PromptVersion.objects.filter(name="chat-system", version=1).first()
    if v1 is None:
        v1 = services.new_prompt_version(
            name="chat-system",
            system_prompt=V1,
            model="gpt-4o-mini",
            temperature=Decimal("0.7"),
            max_tokens=1024,
            notes="Demo: the current prompt.",
        )
    services.make_live(version=v1)
    v2 = services.new_prompt_version(
        name="chat-system",
        system_prompt=V2,
        model="gpt-4o",
        temperature=Decimal("0.5"),
        max_tokens=1024,
        notes="Demo: shorter answers on a stronger model.",
    )
    experiment = Experiment.objects.create(
        key=KEY,
        description="Demo canary: gpt-4o with prompt v2 for 10% of users.",
        prompt_name="chat-system",
        traffic_percent=Decimal(10),
        min_sample=30,
        guardrail_min_calls=200,
        # gpt-4o costs ~15x gpt-4o-mini by design: guard against a runaway, not the price list.
        guardrail_cost_margin=Decimal("20"),
    )
    Variant.objects.create(
        experiment=experiment, key="control", prompt_version=v1, weight=50, is_control=True
    )
    Variant.objects.create(experiment=experiment, key="experiment", prompt_version=v2, weight=50)
    services.start_experiment(experiment=experiment)
    Experiment.objects.filter(pk=experiment.pk).update(
        started_at=timezone.now() - timedelta(days=6)
    )

    users = get_user_model()
    weights = [("control", 50.0), ("experiment", 50.0)]
    enrolled = []
    candidates = []
    for i in range(users_wanted * 12):
        name = f"canary.demo{i:03d}"
        variant = assign(experiment.salt, i, 10.0, weights)
        candidates.append((name, variant))
    # Users are created with unusable passwords (fast, and nobody logs in as them).
    made = []
    for name, _ in candidates:
        user = users(username=name, email=f"{name}@example.com")
        user.set_unusable_password()
        made.append(user)
    users.objects.bulk_create(made, ignore_conflicts=True)
    by_name = {u.username: u for u in users.objects.filter(username__startswith="canary.demo")}
    for name, _ in candidates:
        user = by_name[name]
        variant = assign(experiment.salt, user.pk, 10.0, weights)
        if variant is not None:
            enrolled.append((user, variant))
        if len(enrolled) >= users_wanted:
            break

    now = timezone.now()
    prices = {}
    for user, variant in enrolled:
        version = v1 if variant == "control" else v2
        label = f"{KEY}/{variant}"
        first_seen = now - timedelta(days=rng.uniform(1, 6))
        Exposure.objects.create(
            experiment=experiment, user=user, variant=variant, first_seen_at=first_seen
        )
        conversation = Conversation.objects.create(
            user=user, title="Demo conversation", title_generated=True, created_at=first_seen
        )
        for _ in range(rng.randint(3, 7)):
            at = first_seen + timedelta(minutes=rng.uniform(1, 60 * 24))
            at = min(at, now - timedelta(minutes=1))
            failed = rng.random() < (0.02 if variant == "control" else 0.03)
            output = 0 if failed else int(rng.gauss(420 if variant == "control" else 300, 80))
            question = Message.objects.create(
                conversation=conversation, role="user", content="Demo question", created_at=at
            )
            reply = Message.objects.create(
                conversation=conversation,
                role="assistant",
                reply_to=question,
                created_at=at,
                content="" if failed else "Demo answer.",
                html="" if failed else "<p>Demo answer.</p>",
                status="failed" if failed else "completed",
                model=version.model,
                prompt_version=version,
                variant=label,
                output_tokens=output or None,
            )
            input_tokens = rng.randint(300, 1800)
            key = (version.model, local_day(at))
            if key not in prices:
                prices[key] = price_for(*key)
            AICall.objects.create(
                user=user,
                conversation=conversation,
                message=reply,
                task_type=TaskType.CHAT,
                model=version.model,
                base_url_host="api.example.com",
                status="error" if failed else "ok",
                error_code="upstream_unavailable" if failed else "",
                input_tokens=0 if failed else input_tokens,
                output_tokens=output,
                total_tokens=(0 if failed else input_tokens) + output,
                cost_usd=cost_of(
                    prices[key],
                    input_tokens=0 if failed else input_tokens,
                    cached_input_tokens=0,
                    output_tokens=output,
                ),
                latency_ms=int(rng.lognormvariate(8.6 if variant == "control" else 8.9, 0.3)),
                ttft_ms=None if failed else int(rng.lognormvariate(6.0, 0.4)),
                variant=label,
                prompt_version=version,
                request_id=f"demo-canary-{rng.getrandbits(40):010x}",
                is_demo=True,
                created_at=at,
            )
            if not failed and rng.random() < 0.6:
                liked = rng.random() < (0.66 if variant == "control" else 0.8)
                Feedback.objects.create(
                    message=reply,
                    user=user,
                    rating=1 if liked else -1,
                    variant=label,
                    created_at=at,
                    updated_at=at,
                )
    rollup_range(now - timedelta(days=8), now)
    return len(enrolled)
