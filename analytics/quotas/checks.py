"""What callers use: reserve before a call, count a request (or give its slot back), charge a
recorded call."""

import logging
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from core.outages import REDIS, is_redis_outage

from ..pricing import MILLION, price_for
from ..timezones import reporting_zone
from .backends import backend
from .limits import EXEMPT, Limits, limits_for, limits_of
from .meters import (
    Limit,
    Meter,
    _micro,
    _prefix,
    _rate_key,
    global_meter,
    user_meters,
)
from .reconcile import note_lost_charge
from .refusals import QuotaExceeded, _exceeded

logger = logging.getLogger("analytics.quotas")


def worst_case(model: str, *, input_tokens: int, max_tokens: int) -> tuple[int, int]:
    """Return the most a call can use: (tokens, micro-dollars at the model's price today)."""
    tokens = input_tokens + max_tokens
    price = price_for(model, timezone.localdate(timezone=reporting_zone()))
    if price is None:
        return tokens, 0  # unpriced models count toward token limits only (docs/quotas.md)
    cost = (
        Decimal(input_tokens) * price.input_per_million
        + Decimal(max_tokens) * price.output_per_million
    ) / MILLION
    return tokens, _micro(cost)


@dataclass(slots=True)
class Reservation:
    id: str
    user_id: int | None
    tokens: int
    micro_usd: int
    released: bool = field(default=False)

    def renew(self) -> bool:
        expires = time.time() + settings.QUOTA_RESERVATION_TTL_SECONDS
        return backend().renew(self.id, expires)

    def release(self) -> None:
        if not self.released:
            backend().release(self.id)
            self.released = True


def _items(user, limits: Limits, tokens: int, micro: int) -> list[tuple[Meter, int]]:
    items: list[tuple[Meter, int]] = []
    if not limits.exempt and user is not None:
        for meter in user_meters(user.pk, limits):
            if meter.cap is not None:
                items.append((meter, tokens if meter.unit == "tokens" else micro))
    gmeter = global_meter()
    if gmeter.cap is not None:
        items.append((gmeter, micro))
    return items


def check_only(
    user, *, model: str, input_tokens: int, max_tokens: int, limits: Limits | None = None
) -> None:
    """Refuse with QuotaExceeded when the call's worst case does not fit now; hold nothing.
    ``user`` None (evaluation runs): only the global daily cap applies. ``limits``: the
    user's, when the caller has them."""
    _hold(user, model, input_tokens, max_tokens, limits, reservation=False, capped=True)


def reserve(
    user, *, model: str, input_tokens: int, max_tokens: int, limits: Limits | None = None
) -> "Reservation | None":
    """Hold the call's worst case until released (or expired), or refuse with QuotaExceeded
    when it does not fit; None when no limit applies. Arguments as for ``check_only``."""
    return _hold(user, model, input_tokens, max_tokens, limits, reservation=True, capped=True)


def reserve_anyway(
    user, *, model: str, input_tokens: int, max_tokens: int, limits: Limits | None = None
) -> "Reservation | None":
    """Hold the worst case of a call that runs whatever the limits say (a reply still streaming
    whose reservation expired): it counts against them, and is never refused."""
    return _hold(user, model, input_tokens, max_tokens, limits, reservation=True, capped=False)


def _hold(user, model, input_tokens, max_tokens, limits, *, reservation: bool, capped: bool):
    if limits is None:
        limits = limits_for(user) if user is not None else EXEMPT
    tokens, micro = worst_case(model, input_tokens=input_tokens, max_tokens=max_tokens)
    items = _items(user, limits, tokens, micro)
    if not items:
        return None
    if not capped:
        items = [(replace(meter, cap=None), amount) for meter, amount in items]
    reservation_id = f"{_prefix()}r:{uuid.uuid4().hex}" if reservation else ""
    expires = time.time() + settings.QUOTA_RESERVATION_TTL_SECONDS
    refused = backend().reserve(items, reservation_id, expires)
    _answered()
    if refused is not None:
        raise _exceeded(*refused)
    if not reservation:
        return None
    return Reservation(reservation_id, user.pk if user is not None else None, tokens, micro)


@dataclass(slots=True)
class RequestSlot:
    """The slot of the rate limit that one request took (a unique member of the user's log)."""

    key: str
    member: str
    given_back: bool = field(default=False)

    def give_back(self) -> bool:
        """Free this request's slot, once: a post refused after it took the slot does not count.

        Only this slot is freed: after the window rolled over past it there is nothing left
        to free, and another request's slot is never touched. Return whether it was freed; a
        backend that cannot be reached is logged and leaves the slot to expire with its window.
        """
        if self.given_back:
            return False
        self.given_back = True
        try:
            freed = backend().give_back(self.key, self.member)
        except Exception:
            logger.warning("could not give a rate-limit slot back", exc_info=True)
            return False
        _answered()
        return freed


def take_request(user, limits: Limits | None = None) -> RequestSlot | None:
    """Count one request against the user's rate limit and return its slot (None when no
    rate limit applies); raise QuotaExceeded(rate_limited) when the window is full."""
    limits = limits or limits_for(user)
    if limits.exempt or limits.requests_per_minute is None:
        return None
    slot = RequestSlot(_rate_key(user.pk), uuid.uuid4().hex)
    wait = backend().hit(slot.key, limits.requests_per_minute, slot.member)
    _answered()
    if wait is not None:
        raise QuotaExceeded(
            limit=Limit.REQUESTS_PER_MINUTE,
            used=limits.requests_per_minute,
            requested=1,
            allowed=limits.requests_per_minute,
            resets_at=timezone.now() + timedelta(seconds=wait),
        )
    return slot


def charge(
    *, user_id: int | None, started_at: datetime, recorded_at: datetime, tokens: int, cost_usd
) -> None:
    """Add a recorded call's usage to its meters (receiver of ``call_recorded``, after commit).

    The meters are those of ``started_at``: a reply that began before midnight counts against
    the day that admitted it, although its row is stamped after midnight.
    """
    micro = _micro(cost_usd)
    meters = [global_meter(started_at)]
    if user_id is not None:
        meters += user_meters(user_id, None, started_at)
    items = [
        (
            meter,
            tokens if meter.unit == "tokens" else micro,
            meter.start <= recorded_at < meter.resets_at,  # does a fresh seed count it?
        )
        for meter in meters
    ]
    try:
        missing = backend().charge(items)
        if meters[0].cap is None:
            # No global cap (a setting): its counter is never seeded, and finding that out
            # needs no query. Without this, every call looked up the user's limits again.
            missing = [item for item in missing if item[0] is not meters[0]]
        if missing:
            # Seed only the counters a limit reads (the others would be work for nothing; a
            # limit set later seeds its counter from the recorded calls when first checked).
            limited = _limited_keys(user_id, started_at)
            for item in missing:
                if item[0].key in limited:
                    backend().seed_missing(*item)
    except Exception as exc:
        if is_redis_outage(exc):
            # Redis is away: the monitor raises the counters to the recorded calls (this one's
            # row is committed) when it is back (reconcile.py).
            note_lost_charge(exc)
            return
        # The counter then lags by this call until its period ends or it is reseeded.
        logger.exception("could not charge a call to the quota counters")
        return
    _answered()


def _answered() -> None:
    """The backend answered: with Redis, that ends an outage this process saw (logged once)."""
    if settings.QUOTA_BACKEND == "redis":
        REDIS.recovered()


def _limited_keys(user_id: int | None, moment: datetime) -> set[str]:
    keys = set()
    gmeter = global_meter(moment)
    if gmeter.cap is not None:
        keys.add(gmeter.key)
    limits = limits_of(user_id) if user_id is not None else None
    if user_id is not None and limits is not None and not limits.exempt:
        keys |= {m.key for m in user_meters(user_id, limits, moment) if m.cap is not None}
    return keys
