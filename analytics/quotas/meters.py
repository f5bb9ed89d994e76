"""Meters: one limit of one scope and period, its counter key, and its recorded usage."""

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from ..models import AICall
from ..pricing import MICRO
from ..timezones import day_bounds, month_bounds, reporting_zone
from .limits import NO_LIMITS, Limits
from .models import QuotaEvent

Limit = QuotaEvent.Limit
RATE_WINDOW_SECONDS = 60


def _micro(usd: Decimal | None) -> int:
    """USD to whole micro-dollars, rounded up (a reservation never undercounts)."""
    if usd is None:
        return 0
    return int((usd / MICRO).to_integral_value(rounding=ROUND_CEILING))


def _usd(micro: int) -> Decimal:
    return (Decimal(micro) * MICRO).quantize(MICRO)


@dataclass(frozen=True, slots=True)
class Meter:
    limit: str  # a QuotaEvent.Limit
    key: str
    cap: int | None  # tokens or micro-dollars; None: counted but not limited
    start: datetime
    resets_at: datetime
    user_id: int | None
    unit: str  # "tokens" or "usd"

    @property
    def ttl(self) -> int:
        """Seconds the counter is kept: its period and a day of grace for late settlements."""
        return max(int((self.resets_at - timezone.now()).total_seconds()), 0) + 86_400

    def seed(self) -> int:
        """The recorded usage of the meter's period so far (demo history excluded)."""
        calls = AICall.objects.filter(
            created_at__gte=self.start, created_at__lt=self.resets_at, is_demo=False
        )
        if self.user_id is not None:
            calls = calls.filter(user_id=self.user_id)
        if self.unit == "tokens":
            return int(calls.aggregate(n=Sum("total_tokens"))["n"] or 0)
        return _micro(calls.aggregate(n=Sum("cost_usd"))["n"] or Decimal(0))

    def show(self, amount: int) -> Decimal | int:
        return amount if self.unit == "tokens" else _usd(amount)


def _prefix() -> str:
    # One hash tag for every quota key: a Lua script's keys then share one Redis Cluster slot
    # (a reservation checks the user's and the global meters at once, and the sweep reaches
    # reservations it finds in the shared set; docs/quotas.md "On a Redis Cluster").
    return f"{settings.CHANNEL_LAYER_PREFIX}:{{quota}}:"


def user_meters(user_id: int, limits: Limits | None, now: datetime | None = None) -> list[Meter]:
    """The per-user meters; a meter without a limit still counts (``cap`` None)."""
    now = now or timezone.now()
    today = now.astimezone(reporting_zone()).date()
    day_start, day_end = day_bounds(today)
    month_start, month_end = month_bounds(today)
    p = f"{_prefix()}u{user_id}:"
    limits = limits or NO_LIMITS
    return [
        Meter(
            Limit.TOKENS_PER_DAY,
            f"{p}tok:d{today:%Y%m%d}",
            limits.tokens_per_day,
            day_start,
            day_end,
            user_id,
            "tokens",
        ),
        Meter(
            Limit.COST_PER_DAY,
            f"{p}usd:d{today:%Y%m%d}",
            _micro(limits.cost_per_day_usd) if limits.cost_per_day_usd is not None else None,
            day_start,
            day_end,
            user_id,
            "usd",
        ),
        Meter(
            Limit.COST_PER_MONTH,
            f"{p}usd:m{today:%Y%m}",
            _micro(limits.cost_per_month_usd) if limits.cost_per_month_usd is not None else None,
            month_start,
            month_end,
            user_id,
            "usd",
        ),
    ]


def global_meter(now: datetime | None = None) -> Meter:
    now = now or timezone.now()
    today = now.astimezone(reporting_zone()).date()
    day_start, day_end = day_bounds(today)
    cap = settings.AI_DAILY_COST_CAP_USD
    return Meter(
        Limit.GLOBAL_DAILY_COST,
        f"{_prefix()}g:usd:d{today:%Y%m%d}",
        _micro(cap) if cap is not None else None,
        day_start,
        day_end,
        None,
        "usd",
    )


def _rate_key(user_id: int) -> str:
    return f"{_prefix()}u{user_id}:rpm"
