"""Quotas, the global daily cost cap and request rate limits (docs/quotas.md).

How a limit holds:

* A *meter* counts one limit of one scope and period: a user's tokens today, a user's cost this
  month, everyone's cost today. Its counter is recorded usage plus open reservations, in tokens or
  micro-dollars, kept in Redis (atomic Lua scripts) when ``QUOTA_BACKEND`` is ``redis``, otherwise
  in the database (rows locked with SELECT ... FOR UPDATE; SQLite serialises writers itself).
* Before calling the upstream, a caller *reserves* the call's worst case (its input tokens plus
  ``max_tokens``, priced): one atomic step checks every meter and adds the amount to each, so a
  burst of concurrent requests admits only what fits. Every recorded call's real (or estimated)
  usage is *charged* to the meters of its user and to the global one (``record_call`` announces
  it, ``receivers.py`` listens), and the caller then *releases* its reservation. A reservation whose process died expires after
  ``QUOTA_RESERVATION_TTL_SECONDS`` (the runner renews it while it streams).
* A counter that does not exist yet (a new day, a flushed Redis) is seeded from the recorded calls
  of its period before it is used, so a restart never hands out a fresh quota.
* Requests per minute is a sliding log of unique members, one taken when a message is posted;
  a post refused after it took one gives that member back (``RequestSlot.give_back``).

This package is also the ``quotas`` Django app (label ``quotas``, models in ``models.py``). Its
public names are imported when first used (PEP 562), not when Django imports the app's package
before the models are ready.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backends import DatabaseBackend, RedisBackend, backend
    from .checks import (
        RequestSlot,
        Reservation,
        charge,
        check_only,
        reserve,
        reserve_anyway,
        take_request,
        worst_case,
    )
    from .limits import (
        EXEMPT,
        LIMITS,
        NO_LIMITS,
        Limits,
        default_limits,
        limits_for,
        limits_for_many,
    )
    from .meters import RATE_WINDOW_SECONDS, Limit, Meter, global_meter, user_meters
    from .reconcile import reconcile_counters, reconcile_if_requested
    from .refusals import QuotaExceeded, record_refusal
    from .status import MeterState, meter_state, user_status

_HOMES = {
    "DatabaseBackend": "backends",
    "EXEMPT": "limits",
    "LIMITS": "limits",
    "Limit": "meters",
    "Limits": "limits",
    "Meter": "meters",
    "MeterState": "status",
    "NO_LIMITS": "limits",
    "QuotaExceeded": "refusals",
    "RATE_WINDOW_SECONDS": "meters",
    "RedisBackend": "backends",
    "RequestSlot": "checks",
    "Reservation": "checks",
    "backend": "backends",
    "charge": "checks",
    "check_only": "checks",
    "default_limits": "limits",
    "global_meter": "meters",
    "limits_for": "limits",
    "limits_for_many": "limits",
    "meter_state": "status",
    "reconcile_counters": "reconcile",
    "reconcile_if_requested": "reconcile",
    "record_refusal": "refusals",
    "reserve": "checks",
    "reserve_anyway": "checks",
    "take_request": "checks",
    "user_meters": "meters",
    "user_status": "status",
    "worst_case": "checks",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "EXEMPT",
    "LIMITS",
    "NO_LIMITS",
    "RATE_WINDOW_SECONDS",
    "DatabaseBackend",
    "Limit",
    "Limits",
    "Meter",
    "MeterState",
    "QuotaExceeded",
    "RedisBackend",
    "RequestSlot",
    "Reservation",
    "backend",
    "charge",
    "check_only",
    "default_limits",
    "global_meter",
    "limits_for",
    "limits_for_many",
    "meter_state",
    "reconcile_counters",
    "reconcile_if_requested",
    "record_refusal",
    "reserve",
    "reserve_anyway",
    "take_request",
    "user_meters",
    "user_status",
    "worst_case",
]
