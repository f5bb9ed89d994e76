"""Thirty days of plausible AI call history for the demo (``manage.py seed_demo`` only)."""

import random
from datetime import timedelta

from django.utils import timezone

from core.task_types import TaskType

from .models import AICall
from .pricing import cost_of, price_for
from .rollups import rollup_range
from .timezones import local_day

MODELS = [  # model, share of calls, typical output tokens
    ("gpt-4o-mini", 0.68, 420),
    ("gpt-4o", 0.14, 520),
    ("deepseek-chat", 0.12, 480),
    ("llama3.1-local", 0.06, 380),  # no price: shows as "unpriced"
]
STATUSES = [("ok", 0.94), ("error", 0.025), ("rate_limited", 0.015), ("timeout", 0.01)]
STATUSES.append(("cancelled", 1 - sum(p for _, p in STATUSES)))


def _pick(rng: random.Random, choices):
    x, total = rng.random(), 0.0
    for value, share, *_ in choices:
        total += share
        if x < total:
            return value
    return choices[-1][0]


def seed_call_history(users, *, days: int = 30, seed: int = 42) -> int:
    """Create the demo history (once) and roll it up; return how many calls were made."""
    if AICall.objects.filter(is_demo=True).exists():
        return 0
    rng = random.Random(seed)  # noqa: S311 (demo data, not security)
    now = timezone.now()
    costly_day = days // 5  # one day with a burst of expensive calls
    prices: dict = {}
    calls = []
    for ago in range(days, -1, -1):
        day_start = (now - timedelta(days=ago)).replace(hour=0, minute=0, second=0, microsecond=0)
        n = rng.randint(90, 160) + (60 if ago % 7 in (1, 2) else 0)
        for _ in range(n):
            created = day_start + timedelta(seconds=rng.uniform(6 * 3600, 23 * 3600))
            if created > now:
                continue
            model = _pick(rng, MODELS)
            if ago == costly_day and rng.random() < 0.8:
                model = "gpt-4o"
            typical = next(t for m, _, t in MODELS if m == model)
            task = TaskType.TITLE if rng.random() < 0.15 else TaskType.CHAT
            status = _pick(rng, STATUSES)
            input_tokens = rng.randint(40, 60) if task == TaskType.TITLE else rng.randint(300, 2400)
            if ago == costly_day and model == "gpt-4o":
                input_tokens = min(input_tokens * 80, 120_000)  # someone pasting whole books
            opened = status in ("ok", "cancelled")
            output = 0
            if opened:
                output = (
                    rng.randint(4, 12) if task == TaskType.TITLE else int(rng.gauss(typical, 150))
                )
                output = max(output, 5)
            cached = int(input_tokens * rng.uniform(0.0, 0.5)) if model != "llama3.1-local" else 0
            ttft = int(rng.lognormvariate(6.2, 0.45)) if opened and task == "chat" else None
            latency = (ttft or 0) + int(output * rng.uniform(12, 30)) + rng.randint(40, 200)
            if status == "timeout":
                latency = 30000 + rng.randint(0, 500)
            key = (model, local_day(created))
            if key not in prices:
                prices[key] = price_for(*key)
            calls.append(
                AICall(
                    user=rng.choice(users),
                    task_type=task,
                    model=model,
                    base_url_host="api.example.com",
                    status=status,
                    error_code={
                        "error": "upstream_unavailable",
                        "rate_limited": "upstream_rate_limited",
                        "timeout": "upstream_timeout",
                    }.get(status, ""),
                    streamed=task == "chat",
                    input_tokens=input_tokens if opened else 0,
                    cached_input_tokens=cached if opened else 0,
                    output_tokens=output,
                    total_tokens=(input_tokens if opened else 0) + output,
                    cost_usd=cost_of(
                        prices[key],
                        input_tokens=input_tokens if opened else 0,
                        cached_input_tokens=cached if opened else 0,
                        output_tokens=output,
                    ),
                    latency_ms=latency,
                    ttft_ms=ttft,
                    request_id=f"demo-{rng.getrandbits(48):012x}",
                    is_demo=True,
                    created_at=created,
                )
            )
    AICall.objects.bulk_create(calls, batch_size=1000)
    rollup_range(now - timedelta(days=days + 1), now)
    return len(calls)


def seed_demo_history(*, user, others) -> str:
    made = seed_call_history([user, *others])
    return f"Demo AI call history: {made:,} calls over 30 days (marked demo)." if made else ""
