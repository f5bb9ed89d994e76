"""What people see: each meter's use against its limit."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from .backends import backend
from .limits import limits_for
from .meters import Limit, Meter, global_meter, user_meters


@dataclass(frozen=True, slots=True)
class MeterState:
    limit: str
    unit: str
    used: Decimal | int
    allowed: Decimal | int | None
    resets_at: datetime

    @property
    def remaining(self):
        if self.allowed is None:
            return None
        return max(self.allowed - self.used, 0)

    @property
    def fraction(self) -> float | None:
        if not self.allowed:
            return None if self.allowed is None else 1.0
        return min(float(self.used) / float(self.allowed), 1.0)

    @property
    def text(self) -> str:
        """``12,345 of 50,000 tokens left today`` / ``$0.42 of $1.00 left this month``."""
        period = "this month" if self.limit == Limit.COST_PER_MONTH else "today"
        if self.unit == "tokens":
            return f"{self.remaining:,} of {self.allowed:,} tokens left {period}"
        return f"${self.remaining:,.2f} of ${self.allowed:,.2f} left {period}"

    @property
    def low(self) -> bool:
        return self.fraction is not None and self.fraction >= 0.9

    def as_json(self) -> dict:
        return {
            "text": self.text,
            "low": self.low,
            "limit": self.limit,
            "unit": self.unit,
            # USD as strings (exact decimals); tokens as numbers.
            "used": _json_amount(self.used),
            "allowed": _json_amount(self.allowed),
            "remaining": _json_amount(self.remaining),
            "resets_at": self.resets_at.isoformat(),
        }


def _json_amount(value):
    return str(value) if isinstance(value, Decimal) else value


def meter_state(meter: Meter) -> MeterState:
    used = max(backend().value(meter), 0)
    return MeterState(
        limit=meter.limit,
        unit=meter.unit,
        used=meter.show(used),
        allowed=meter.show(meter.cap) if meter.cap is not None else None,
        resets_at=meter.resets_at,
    )


def user_status(user) -> dict:
    """What the chat page and ``GET /api/quota`` show: every limited meter of the user."""
    limits = limits_for(user)
    meters = [] if limits.exempt else [m for m in user_meters(user.pk, limits) if m.cap is not None]
    gmeter = global_meter()
    return {
        "exempt": limits.exempt,
        "requests_per_minute": limits.requests_per_minute,
        "meters": [meter_state(m) for m in meters],
        "global_cap_reached": (gmeter.cap is not None and backend().value(gmeter) >= gmeter.cap),
    }
