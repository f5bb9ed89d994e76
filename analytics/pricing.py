"""What a call costs: the list price in effect on the call's day, applied to its tokens."""

from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from core.localcache import LocalCache

from .models import ModelPrice

MICRO = Decimal("0.000001")
MILLION = Decimal(1_000_000)


# The price list, kept per process (core.localcache): a reply is priced three times
# (admission, reservation, record). Connected to ModelPrice's signals in AnalyticsConfig.ready.
PRICES = LocalCache("prices")


def _price_list() -> list[ModelPrice]:
    return PRICES.get("all", lambda: list(ModelPrice.objects.order_by("-effective_from", "-pk")))


def price_for(model: str, on: date) -> ModelPrice | None:
    """Return the price of ``model`` in effect on ``on``: an exact name first, else the longest
    matching prefix (``gpt-4o-mini*``), each the latest that took effect by that day."""
    candidates = [price for price in _price_list() if price.effective_from <= on]
    exact = next((price for price in candidates if price.model == model), None)
    if exact is not None:
        return exact
    best: ModelPrice | None = None
    for price in (price for price in candidates if price.model.endswith("*")):
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
