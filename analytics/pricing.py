"""What a call costs: the list price in effect on the call's day, applied to its tokens."""

from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from .models import ModelPrice

MICRO = Decimal("0.000001")
MILLION = Decimal(1_000_000)


def price_for(model: str, on: date) -> ModelPrice | None:
    """Return the price of ``model`` in effect on ``on``: an exact name first, else the longest
    matching prefix (``gpt-4o-mini*``), each the latest that took effect by that day."""
    candidates = ModelPrice.objects.filter(effective_from__lte=on).order_by("-effective_from")
    exact = candidates.filter(model=model).first()
    if exact is not None:
        return exact
    best: ModelPrice | None = None
    for price in candidates.filter(model__endswith="*"):
        prefix = price.model[:-1]
        if not model.startswith(prefix):
            continue
        if best is None or len(prefix) > len(best.model) - 1:
            best = price
    return best


def cost_of(
    price: ModelPrice | None, *, input_tokens: int, cached_input_tokens: int, output_tokens: int
) -> Decimal | None:
    """Return the cost in USD (to the micro-dollar), or None when there is no price."""
    if price is None:
        return None
    cached = min(cached_input_tokens, input_tokens)
    cached_rate = (
        price.cached_input_per_million
        if price.cached_input_per_million is not None
        else price.input_per_million
    )
    total = (
        Decimal(input_tokens - cached) * price.input_per_million
        + Decimal(cached) * cached_rate
        + Decimal(output_tokens) * price.output_per_million
    ) / MILLION
    return total.quantize(MICRO, rounding=ROUND_HALF_UP)
