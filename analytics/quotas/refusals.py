"""A limit that refuses: the exception, its message, and the stored quota event."""

import logging
import math
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from core.errors import AppError

from ..metrics import QUOTA_REFUSALS
from ..timezones import reporting_zone
from .meters import Limit, Meter
from .models import QuotaEvent

logger = logging.getLogger("analytics.quotas")


_LIMIT_TEXT = {
    Limit.REQUESTS_PER_MINUTE: "limit of {allowed} requests per minute",
    Limit.TOKENS_PER_DAY: "daily quota of {allowed} tokens",
    Limit.COST_PER_DAY: "daily AI budget of ${allowed}",
    Limit.COST_PER_MONTH: "monthly AI budget of ${allowed}",
}


def _format_amount(value) -> str:
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    return f"{value:,}"


class QuotaExceeded(AppError):
    """A limit refuses a request; ``code`` is ``rate_limited`` or ``quota_exceeded``."""

    status = 429

    def __init__(self, *, limit: str, used, requested, allowed, resets_at: datetime):
        self.limit = limit
        self.used = used
        self.requested = requested
        self.allowed = allowed
        self.resets_at = resets_at
        self.code = "rate_limited" if limit == Limit.REQUESTS_PER_MINUTE else "quota_exceeded"
        Exception.__init__(self, self.message)  # ``message`` is computed, not stored

    @property  # computed at each use, where AppError stores it: hence the ignores
    def retry_after(self) -> int:  # type: ignore[override]
        return max(math.ceil((self.resets_at - timezone.now()).total_seconds()), 1)

    @property
    def message(self) -> str:  # type: ignore[override]
        local = timezone.localtime(self.resets_at, reporting_zone())
        if self.limit == Limit.REQUESTS_PER_MINUTE:
            when = f"in {self.retry_after} s"
        elif local.date() == timezone.localtime(timezone.now(), reporting_zone()).date():
            when = f"at {local:%H:%M} {local.tzname()}"
        else:
            when = f"at {local:%Y-%m-%d %H:%M} {local.tzname()}"
        if self.limit == Limit.GLOBAL_DAILY_COST:
            return f"The service has reached its daily AI spending cap. It resets {when}."
        text = _LIMIT_TEXT[Limit(self.limit)].format(allowed=_format_amount(self.allowed))
        if self.limit == Limit.REQUESTS_PER_MINUTE:
            return f"You have reached your {text}. Try again {when}."
        return (
            f"This request would go over your {text} "
            f"({_format_amount(self.used)} used). It resets {when}."
        )

    def as_json(self) -> dict:
        return {
            "code": self.code,
            "message": self.message,
            "limit": self.limit,
            "resets_at": self.resets_at.isoformat(),
            "retry_after": self.retry_after,
        }


def _exceeded(meter: Meter, used: int, amount: int) -> QuotaExceeded:
    assert meter.cap is not None  # only a capped meter refuses
    return QuotaExceeded(
        limit=meter.limit,
        used=meter.show(used),
        requested=meter.show(amount),
        allowed=meter.show(meter.cap),
        resets_at=meter.resets_at,
    )


def record_refusal(exc: QuotaExceeded, *, user_id: int | None, stage: str) -> None:
    """Store a refusal (the admin counts them by user and limit) and count it in Prometheus."""
    QUOTA_REFUSALS.labels(exc.limit, stage).inc()
    try:
        QuotaEvent.objects.create(
            user_id=user_id,
            limit=exc.limit,
            stage=stage,
            used=Decimal(exc.used),
            requested=Decimal(exc.requested),
            allowed=Decimal(exc.allowed),
            resets_at=exc.resets_at,
        )
    except Exception:
        logger.warning("could not store a quota event", exc_info=True)
