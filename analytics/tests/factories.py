"""Factories for analytics tests: AI calls with explicit times, tokens and outcomes."""

import itertools
from datetime import datetime
from decimal import Decimal

from django.contrib.auth import get_user_model

from analytics.models import AICall, ModelPrice
from analytics.pricing import cost_of, price_for
from analytics.timezones import local_day

_counter = itertools.count()


def make_user(name: str | None = None, **extra):
    name = name or f"user{next(_counter)}"
    return get_user_model().objects.create_user(name, email=f"{name}@example.com", **extra)


def make_price(model="gpt-test", inp="1.00", cached="0.50", out="2.00", day=None, **extra):
    from datetime import date

    return ModelPrice.objects.create(
        model=model,
        input_per_million=Decimal(inp),
        cached_input_per_million=Decimal(cached) if cached is not None else None,
        output_per_million=Decimal(out),
        effective_from=day or date(2020, 1, 1),
        source="test",
        **extra,
    )


def make_call(
    *,
    created_at: datetime,
    model="gpt-test",
    status="ok",
    task_type="chat",
    variant="",
    user=None,
    input_tokens=100,
    cached_input_tokens=0,
    output_tokens=50,
    latency_ms=1000,
    ttft_ms=200,
    **extra,
) -> AICall:
    cost = cost_of(
        price_for(model, local_day(created_at)),
        input_tokens=input_tokens,
        cached_input_tokens=cached_input_tokens,
        output_tokens=output_tokens,
    )
    return AICall.objects.create(
        created_at=created_at,
        model=model,
        status=status,
        task_type=task_type,
        variant=variant,
        user=user,
        input_tokens=input_tokens,
        cached_input_tokens=cached_input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
        cost_usd=cost,
        latency_ms=latency_ms,
        ttft_ms=ttft_ms,
        **extra,
    )


def make_call_record(user, input_tokens: int, output_tokens: int, *, model: str):
    """A successful chat call of ``user`` as the runner hands it to ``record_call``."""
    from analytics.services import CallRecord

    return CallRecord(
        task_type="chat",
        model=model,
        base_url="http://127.0.0.1:1/v1",
        status="ok",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        latency_ms=10,
        user_id=user.pk,
    )
