from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from analytics.models import AICall, ModelPrice
from analytics.pricing import cost_of, price_for
from analytics.services import CallRecord, record_call

from .factories import make_price

pytestmark = pytest.mark.django_db


def test_seeded_prices_have_sources_and_dates():
    for model in (
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "deepseek-chat",
    ):
        price = price_for(model, date(2026, 1, 1))
        assert price is not None, model
        assert price.source and "http" in price.source
    assert price_for("gpt-4o-mini", date(2026, 1, 1)).output_per_million == Decimal("0.60")


def test_cost_counts_cached_tokens_at_their_rate():
    price = make_price(inp="2.00", cached="0.50", out="8.00")
    # 1,000 input of which 400 cached, 500 output:
    # 600 * 2 + 400 * 0.5 + 500 * 8 = 1200 + 200 + 4000 = 5400 per million -> $0.0054
    assert cost_of(price, input_tokens=1000, cached_input_tokens=400, output_tokens=500) == Decimal(
        "0.005400"
    )
    # No cached rate: cached tokens cost like other input.
    plain = make_price(model="plain", inp="2.00", cached=None, out="8.00")
    assert cost_of(plain, input_tokens=1000, cached_input_tokens=400, output_tokens=0) == Decimal(
        "0.002000"
    )
    # Micro-dollar precision, rounded half up.
    tiny = make_price(model="tiny", inp="0.15", cached=None, out="0.60")
    assert cost_of(tiny, input_tokens=3, cached_input_tokens=0, output_tokens=1) == Decimal(
        "0.000001"
    )


def test_exact_name_beats_prefix_and_longest_prefix_wins():
    make_price(model="acme*", inp="9")
    make_price(model="acme-large*", inp="5")
    make_price(model="acme-large-2", inp="1")
    assert price_for("acme-large-2", date(2026, 1, 1)).input_per_million == Decimal("1")
    assert price_for("acme-large-3", date(2026, 1, 1)).input_per_million == Decimal("5")
    assert price_for("acme-small", date(2026, 1, 1)).input_per_million == Decimal("9")
    assert price_for("other", date(2026, 1, 1)) is None


def test_the_price_in_effect_on_the_calls_day_is_used():
    make_price(model="m", inp="1", day=date(2026, 1, 1))
    make_price(model="m", inp="3", day=date(2026, 6, 1))
    assert price_for("m", date(2026, 5, 31)).input_per_million == Decimal("1")
    assert price_for("m", date(2026, 6, 1)).input_per_million == Decimal("3")
    assert price_for("m", date(2025, 12, 31)) is None


def record(model="gpt-test", **kwargs):
    defaults = dict(
        task_type="chat",
        model=model,
        base_url="https://api.example.com/v1",
        status="ok",
        input_tokens=1000,
        output_tokens=1000,
        latency_ms=100,
    )
    return record_call(CallRecord(**(defaults | kwargs)))


def test_record_call_stores_the_cost_and_later_edits_do_not_rewrite_it():
    price = make_price(inp="1.00", out="2.00")
    call = record()
    assert call.cost_usd == Decimal("0.003000")
    price.output_per_million = Decimal("20.00")
    price.save()
    call.refresh_from_db()
    assert call.cost_usd == Decimal("0.003000")


def test_a_model_without_a_price_is_unpriced_not_free():
    call = record(model="mystery-model")
    assert call.cost_usd is None
    assert AICall.objects.filter(cost_usd=0).count() == 0


def test_reprice_calls_recomputes_on_purpose(capsys):
    from django.core.management import call_command

    make_price(inp="1.00", out="2.00")
    call = record(created_at=timezone.now() - timedelta(days=2))
    unpriced = record(model="mystery-model")
    ModelPrice.objects.filter(model="gpt-test").update(output_per_million=Decimal("4.00"))
    since = (timezone.now() - timedelta(days=3)).date().isoformat()
    call_command("reprice_calls", "--since", since, "--dry-run")
    call.refresh_from_db()
    assert call.cost_usd == Decimal("0.003000")
    call_command("reprice_calls", "--since", since)
    call.refresh_from_db()
    unpriced.refresh_from_db()
    assert call.cost_usd == Decimal("0.005000")
    assert unpriced.cost_usd is None
    assert "1 have no price" in capsys.readouterr().out
