"""Quotas, the global daily cost cap and request rate limits (docs/quotas.md).

How a limit holds:

* A *meter* counts one limit of one scope and period: a user's tokens today, a user's cost this
  month, everyone's cost today. Its counter is recorded usage plus open reservations, in tokens or
  micro-dollars, kept in Redis (atomic Lua scripts) when ``QUOTA_BACKEND`` is ``redis``, otherwise
  in the database (rows locked with SELECT ... FOR UPDATE; SQLite serialises writers itself).
* Before calling the upstream, a caller *reserves* the call's worst case (its input tokens plus
  ``max_tokens``, priced): one atomic step checks every meter and adds the amount to each, so a
  burst of concurrent requests admits only what fits. ``record_call`` *charges* every recorded
  call's real (or estimated) usage to the meters of its user and to the global one, and the caller
  then *releases* its reservation. A reservation whose process died expires after
  ``QUOTA_RESERVATION_TTL_SECONDS`` (the runner renews it while it streams).
* A counter that does not exist yet (a new day, a flushed Redis) is seeded from the recorded calls
  of its period before it is used, so a restart never hands out a fresh quota.
* Requests per minute is a sliding log, taken when a message is posted.
"""

import logging
import math
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from functools import cache

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from aiproject.localcache import LocalCache

from .metrics import QUOTA_REFUSALS
from .models import AICall, QuotaCounter, QuotaEvent, QuotaReservation, UsageQuota
from .pricing import MICRO, MILLION, price_for
from .timezones import day_bounds, month_bounds, reporting_zone

logger = logging.getLogger(__name__)

Limit = QuotaEvent.Limit
RATE_WINDOW_SECONDS = 60


# --- limits ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limits:
    requests_per_minute: int | None
    tokens_per_day: int | None
    cost_per_day_usd: Decimal | None
    cost_per_month_usd: Decimal | None
    exempt: bool = False


_FIELDS = ("requests_per_minute", "tokens_per_day", "cost_per_day_usd", "cost_per_month_usd")


def default_limits() -> Limits:
    return Limits(
        requests_per_minute=settings.QUOTA_REQUESTS_PER_MINUTE,
        tokens_per_day=settings.QUOTA_TOKENS_PER_DAY,
        cost_per_day_usd=settings.QUOTA_COST_PER_DAY_USD,
        cost_per_month_usd=settings.QUOTA_COST_PER_MONTH_USD,
    )


def _resolve(rows: list[UsageQuota], user_id: int, group_ids: set[int]) -> Limits:
    """The user's own row, else the most generous of their groups' rows, else the settings."""
    defaults = default_limits()
    own = next((r for r in rows if r.user_id == user_id), None)
    groups = [r for r in rows if r.group_id in group_ids]
    values = {}
    for name in _FIELDS:
        by_groups = [getattr(r, name) for r in groups if getattr(r, name) is not None]
        value = max(by_groups) if by_groups else getattr(defaults, name)
        if own is not None and getattr(own, name) is not None:
            value = getattr(own, name)
        values[name] = value
    return Limits(**values)


NO_LIMITS = Limits(None, None, None, None)
EXEMPT = Limits(None, None, None, None, exempt=True)


# Each user's limits, kept per process (aiproject.localcache): posting a message reads them,
# three queries. Connected to the models they derive from in AnalyticsConfig.ready.
LIMITS = LocalCache("limits")


def limits_for(user) -> Limits:
    """The user's limits: exempt, their own UsageQuota row, their groups', or the settings'."""
    return LIMITS.get(user.pk, lambda: _read_limits(user))


def _read_limits(user) -> Limits:
    if user.has_perm("analytics.exempt_from_quotas"):
        return EXEMPT
    rows = list(UsageQuota.objects.filter(Q(user=user) | Q(group__user=user)).distinct())
    return _resolve(rows, user.pk, {r.group_id for r in rows if r.group_id is not None})


def limits_for_many(users) -> dict[int, Limits]:
    """``limits_for`` of many users in four queries (the admin overview)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    User = get_user_model()
    ids = [u.pk for u in users]
    permission = Permission.objects.filter(
        content_type__app_label="analytics", codename="exempt_from_quotas"
    ).first()
    holders = Q(is_superuser=True)
    if permission is not None:
        holders |= Q(user_permissions=permission) | Q(groups__permissions=permission)
    exempt = set(
        User.objects.filter(holders, pk__in=ids, is_active=True).values_list("pk", flat=True)
    )
    memberships: dict[int, set[int]] = {pk: set() for pk in ids}
    for user_id, group_id in User.groups.through.objects.filter(user_id__in=ids).values_list(
        "user_id", "group_id"
    ):
        memberships[user_id].add(group_id)
    all_groups = set().union(*memberships.values()) if memberships else set()
    rows = list(UsageQuota.objects.filter(Q(user_id__in=ids) | Q(group_id__in=all_groups)))
    return {pk: EXEMPT if pk in exempt else _resolve(rows, pk, memberships[pk]) for pk in ids}


# --- periods and meters ----------------------------------------------------------------------


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
    return f"{settings.CHANNEL_LAYER_PREFIX}:quota:"


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


# --- refusals --------------------------------------------------------------------------------


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


class QuotaExceeded(Exception):
    """A limit refuses a request; ``code`` is ``rate_limited`` or ``quota_exceeded``."""

    def __init__(self, *, limit: str, used, requested, allowed, resets_at: datetime):
        self.limit = limit
        self.used = used
        self.requested = requested
        self.allowed = allowed
        self.resets_at = resets_at
        self.code = "rate_limited" if limit == Limit.REQUESTS_PER_MINUTE else "quota_exceeded"
        super().__init__(self.message)

    @property
    def retry_after(self) -> int:
        return max(math.ceil((self.resets_at - timezone.now()).total_seconds()), 1)

    @property
    def message(self) -> str:
        local = timezone.localtime(self.resets_at, reporting_zone())
        if self.limit == Limit.REQUESTS_PER_MINUTE:
            when = f"in {self.retry_after} s"
        elif local.date() == timezone.localtime(timezone.now(), reporting_zone()).date():
            when = f"at {local:%H:%M} {local.tzname()}"
        else:
            when = f"at {local:%Y-%m-%d %H:%M} {local.tzname()}"
        if self.limit == Limit.GLOBAL_DAILY_COST:
            return f"The service has reached its daily AI spending cap. It resets {when}."
        text = _LIMIT_TEXT[self.limit].format(allowed=_format_amount(self.allowed))
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


# --- backends --------------------------------------------------------------------------------

# Shared by the Redis scripts: give back the amounts of reservations that expired.
_LUA_SWEEP = """
local function sweep(zset, now)
  local ids = redis.call('ZRANGEBYSCORE', zset, '-inf', now, 'LIMIT', 0, 100)
  for _, rid in ipairs(ids) do
    local flat = redis.call('HGETALL', rid)
    for j = 1, #flat, 2 do
      if redis.call('EXISTS', flat[j]) == 1 then redis.call('DECRBY', flat[j], flat[j + 1]) end
    end
    redis.call('DEL', rid)
    redis.call('ZREM', zset, rid)
  end
end
"""

# KEYS: the reservations zset, then the counters. ARGV: now, reservation key ('' = only check),
# reservation expiry, then amount, cap (-1 = none) and ttl of each counter.
_LUA_RESERVE = (
    _LUA_SWEEP
    + """
sweep(KEYS[1], ARGV[1])
local n = #KEYS - 1
local missing = {}
for i = 1, n do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then table.insert(missing, i) end
end
if #missing > 0 then return {'missing', missing} end
for i = 1, n do
  local amount = tonumber(ARGV[3 + 3 * (i - 1) + 1])
  local cap = tonumber(ARGV[3 + 3 * (i - 1) + 2])
  local used = tonumber(redis.call('GET', KEYS[i + 1]))
  if cap >= 0 and used + amount > cap then return {'exceeded', i, used} end
end
if ARGV[2] ~= '' then
  for i = 1, n do
    local amount = tonumber(ARGV[3 + 3 * (i - 1) + 1])
    redis.call('INCRBY', KEYS[i + 1], amount)
    redis.call('EXPIRE', KEYS[i + 1], tonumber(ARGV[3 + 3 * (i - 1) + 3]))
    redis.call('HSET', ARGV[2], KEYS[i + 1], amount)
  end
  redis.call('ZADD', KEYS[1], tonumber(ARGV[3]), ARGV[2])
  redis.call('EXPIREAT', ARGV[2], math.ceil(tonumber(ARGV[3])) + 86400)
end
return {'ok'}
"""
)

# KEYS: the reservations zset. ARGV: now. Give back what expired (before reading a counter).
_LUA_SWEEP_ONLY = (
    _LUA_SWEEP
    + """
sweep(KEYS[1], ARGV[1])
return 1
"""
)

# KEYS: the reservations zset, the reservation. Give its amounts back (if it has not expired).
_LUA_RELEASE = """
local flat = redis.call('HGETALL', KEYS[2])
for j = 1, #flat, 2 do
  if redis.call('EXISTS', flat[j]) == 1 then redis.call('DECRBY', flat[j], flat[j + 1]) end
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], KEYS[2])
return #flat / 2
"""

# KEYS: the reservations zset, the reservation. ARGV: the new expiry.
_LUA_RENEW = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('ZADD', KEYS[1], 'XX', tonumber(ARGV[1]), KEYS[2])
redis.call('EXPIREAT', KEYS[2], math.ceil(tonumber(ARGV[1])) + 86400)
return 1
"""

# KEYS: counters. ARGV: the amount of each. Adds to the counters that exist and returns the
# indexes of the others (the caller seeds those: the seed includes the call being charged).
_LUA_CHARGE = """
local missing = {}
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('INCRBY', KEYS[i], ARGV[i])
  else
    table.insert(missing, i)
  end
end
return missing
"""

# KEYS: the log. ARGV: now (ms), window (ms), limit, a unique member. Returns {allowed, wait ms}.
_LUA_RATE = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tonumber(oldest[2]) + window - now}
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
return {1, 0}
"""


class RedisBackend:
    def __init__(self, url: str):
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=5, health_check_interval=30)
        self._reserve = self.client.register_script(_LUA_RESERVE)
        self._release = self.client.register_script(_LUA_RELEASE)
        self._renew = self.client.register_script(_LUA_RENEW)
        self._charge = self.client.register_script(_LUA_CHARGE)
        self._rate = self.client.register_script(_LUA_RATE)
        self._sweep = self.client.register_script(_LUA_SWEEP_ONLY)

    @property
    def zset(self) -> str:
        return f"{_prefix()}reservations"

    def reserve(self, items, reservation_id: str, expires: float):
        """Check (and with a reservation id, add) every amount; return None or the refusal."""
        for _ in range(3):
            args = [time.time(), reservation_id, expires]
            for meter, amount in items:
                args += [amount, meter.cap if meter.cap is not None else -1, meter.ttl]
            result = self._reserve(keys=[self.zset] + [m.key for m, _ in items], args=args)
            verdict = result[0].decode()
            if verdict == "ok":
                return None
            if verdict == "exceeded":
                meter, amount = items[int(result[1]) - 1]
                return meter, int(result[2]), amount
            for index in result[1]:  # seed the missing counters, then try again
                meter = items[int(index) - 1][0]
                self.client.set(meter.key, meter.seed(), nx=True, ex=meter.ttl)
        raise RuntimeError("quota counters kept disappearing")

    def release(self, reservation_id: str) -> None:
        self._release(keys=[self.zset, reservation_id])

    def renew(self, reservation_id: str, expires: float) -> bool:
        return bool(self._renew(keys=[self.zset, reservation_id], args=[expires]))

    def charge(self, items: list[tuple[Meter, int, bool]]) -> list[tuple[Meter, int, bool]]:
        """Add to the counters that exist; return the items whose counter is missing."""
        missing = self._charge(keys=[m.key for m, _, _ in items], args=[a for _, a, _ in items])
        return [items[int(index) - 1] for index in missing]

    def seed_missing(self, meter: Meter, amount: int, seed_counts_it: bool) -> None:
        # A fresh seed counts this call when it was recorded in the meter's period (it is
        # committed); if another process created the counter meanwhile, its seed may not have,
        # so add it (an over-count at worst).
        seeded = meter.seed() + (0 if seed_counts_it else amount)
        if not self.client.set(meter.key, seeded, nx=True, ex=meter.ttl):
            self.client.incrby(meter.key, amount)

    def hit(self, key: str, limit: int) -> float | None:
        now_ms = int(time.time() * 1000)
        allowed, wait_ms = self._rate(
            keys=[key], args=[now_ms, RATE_WINDOW_SECONDS * 1000, limit, uuid.uuid4().hex]
        )
        return None if allowed else max(int(wait_ms), 0) / 1000

    def value(self, meter: Meter) -> int:
        """The meter's usage with its open reservations (expired ones given back first)."""
        self._sweep(keys=[self.zset], args=[time.time()])
        raw = self.client.get(meter.key)
        return int(raw) if raw is not None else meter.seed()

    def open_reservations(self) -> int:
        return self.client.zcount(self.zset, time.time(), "+inf")

    def clear(self) -> None:
        """Delete every counter and reservation of this prefix (tests and benchmarks)."""
        for key in self.client.scan_iter(match=f"{_prefix()}*", count=1000):
            self.client.delete(key)


class DatabaseBackend:
    @staticmethod
    def _sweep(now: datetime) -> None:
        with transaction.atomic():
            expired = list(
                QuotaReservation.objects.select_for_update(skip_locked=True).filter(
                    expires_at__lte=now
                )[:100]
            )
            DatabaseBackend._give_back(expired)

    @staticmethod
    def _give_back(reservations: list[QuotaReservation]) -> None:
        """Take locked reservations' amounts off their counters and delete them: one update per
        key, in key order, so two give-backs never lock counters in a cycle."""
        totals: dict[str, int] = {}
        for reservation in reservations:
            for key, amount in reservation.amounts.items():
                totals[key] = totals.get(key, 0) + amount
        for key in sorted(totals):
            QuotaCounter.objects.filter(key=key).update(value=F("value") - totals[key])
        if reservations:
            QuotaReservation.objects.filter(pk__in=[r.pk for r in reservations]).delete()

    def reserve(self, items, reservation_id: str, expires: float):
        now = timezone.now()
        if not transaction.get_connection().in_atomic_block:
            self._sweep(now)
        with transaction.atomic():
            keys = [m.key for m, _ in items]
            existing = set(QuotaCounter.objects.filter(key__in=keys).values_list("key", flat=True))
            QuotaCounter.objects.bulk_create(
                [
                    QuotaCounter(
                        key=m.key, value=m.seed(), expires_at=now + timedelta(seconds=m.ttl)
                    )
                    for m, _ in items
                    if m.key not in existing
                ],
                ignore_conflicts=True,
            )
            counters = QuotaCounter.objects.filter(key__in=keys)
            if reservation_id:
                # A fixed lock order: two reservations never wait on each other in a cycle. A
                # check without a reservation only reads (it must not hold the global row for
                # the rest of the caller's transaction).
                counters = counters.select_for_update().order_by("key")
            rows = {row.key: row for row in counters}
            for meter, amount in items:
                used = rows[meter.key].value
                if meter.cap is not None and used + amount > meter.cap:
                    return meter, used, amount
            if reservation_id:
                for meter, amount in items:
                    QuotaCounter.objects.filter(key=meter.key).update(value=F("value") + amount)
                QuotaReservation.objects.create(
                    id=reservation_id,
                    amounts={m.key: a for m, a in items},
                    expires_at=datetime.fromtimestamp(expires, UTC),
                )
        return None

    def release(self, reservation_id: str) -> None:
        with transaction.atomic():
            self._give_back(
                list(QuotaReservation.objects.select_for_update().filter(id=reservation_id))
            )

    def renew(self, reservation_id: str, expires: float) -> bool:
        return bool(
            QuotaReservation.objects.filter(id=reservation_id).update(
                expires_at=datetime.fromtimestamp(expires, UTC)
            )
        )

    def charge(self, items: list[tuple[Meter, int, bool]]) -> list[tuple[Meter, int, bool]]:
        """Add to the counters that exist (one statement each); return the missing ones."""
        missing = []
        for item in sorted(items, key=lambda item: item[0].key):
            meter, amount, _ = item
            if not QuotaCounter.objects.filter(key=meter.key).update(value=F("value") + amount):
                missing.append(item)
        return missing

    def seed_missing(self, meter: Meter, amount: int, seed_counts_it: bool) -> None:
        # As in RedisBackend.seed_missing.
        _, created = QuotaCounter.objects.get_or_create(
            key=meter.key,
            defaults={
                "value": meter.seed() + (0 if seed_counts_it else amount),
                "expires_at": timezone.now() + timedelta(seconds=meter.ttl),
            },
        )
        if not created:
            QuotaCounter.objects.filter(key=meter.key).update(value=F("value") + amount)

    def hit(self, key: str, limit: int) -> float | None:
        now = time.time()
        with transaction.atomic():
            QuotaCounter.objects.bulk_create(
                [
                    QuotaCounter(
                        key=key, expires_at=timezone.now() + timedelta(seconds=RATE_WINDOW_SECONDS)
                    )
                ],
                ignore_conflicts=True,
            )
            row = QuotaCounter.objects.select_for_update().get(key=key)
            hits = [t for t in row.hits if t > now - RATE_WINDOW_SECONDS]
            if len(hits) >= limit:
                return max(min(hits) + RATE_WINDOW_SECONDS - now, 0)
            hits.append(now)
            row.hits = hits
            row.expires_at = timezone.now() + timedelta(seconds=RATE_WINDOW_SECONDS)
            row.save(update_fields=["hits", "expires_at"])
        return None

    def value(self, meter: Meter) -> int:
        """The meter's usage with its open reservations (expired ones given back first)."""
        if not transaction.get_connection().in_atomic_block:
            self._sweep(timezone.now())
        row = QuotaCounter.objects.filter(key=meter.key).first()
        return row.value if row is not None else meter.seed()

    def open_reservations(self) -> int:
        return QuotaReservation.objects.filter(expires_at__gt=timezone.now()).count()

    def clear(self) -> None:
        QuotaCounter.objects.filter(key__startswith=_prefix()).delete()
        QuotaReservation.objects.filter(id__startswith=_prefix()).delete()

    @staticmethod
    def purge_expired() -> int:
        """Delete counters past their period (the monitor calls this)."""
        DatabaseBackend._sweep(timezone.now())
        deleted, _ = QuotaCounter.objects.filter(expires_at__lt=timezone.now()).delete()
        return deleted


@cache
def backend() -> RedisBackend | DatabaseBackend:
    if settings.QUOTA_BACKEND == "redis":
        return RedisBackend(settings.REDIS_URL)
    return DatabaseBackend()


# --- what callers use ------------------------------------------------------------------------


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


def check(
    user,
    *,
    model: str,
    input_tokens: int,
    max_tokens: int,
    reserve: bool,
    force: bool = False,
    limits: Limits | None = None,
):
    """Refuse with QuotaExceeded when the call's worst case does not fit; with ``reserve``, hold
    it and return the Reservation (None when no limit applies). ``user`` None (evaluation runs):
    only the global daily cap applies. ``limits``: the user's, when the caller has them."""
    if limits is None:
        limits = limits_for(user) if user is not None else EXEMPT
    tokens, micro = worst_case(model, input_tokens=input_tokens, max_tokens=max_tokens)
    items = _items(user, limits, tokens, micro)
    if not items:
        return None
    if force:  # account for a call that runs anyway (a reservation that expired mid-stream)
        items = [(replace(meter, cap=None), amount) for meter, amount in items]
    reservation_id = f"{_prefix()}r:{uuid.uuid4().hex}" if reserve else ""
    expires = time.time() + settings.QUOTA_RESERVATION_TTL_SECONDS
    refused = backend().reserve(items, reservation_id, expires)
    if refused is not None:
        raise _exceeded(*refused)
    if not reserve:
        return None
    return Reservation(reservation_id, user.pk if user is not None else None, tokens, micro)


def take_request(user, limits: Limits | None = None) -> None:
    """Count one request against the user's rate limit; raise QuotaExceeded(rate_limited)."""
    limits = limits or limits_for(user)
    if limits.exempt or limits.requests_per_minute is None:
        return
    wait = backend().hit(_rate_key(user.pk), limits.requests_per_minute)
    if wait is not None:
        raise QuotaExceeded(
            limit=Limit.REQUESTS_PER_MINUTE,
            used=limits.requests_per_minute,
            requested=1,
            allowed=limits.requests_per_minute,
            resets_at=timezone.now() + timedelta(seconds=wait),
        )


def charge(
    *, user_id: int | None, started_at: datetime, recorded_at: datetime, tokens: int, cost_usd
) -> None:
    """Add a recorded call's usage to its meters (``record_call`` calls this after commit).

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
    except Exception:
        # The counter then lags by this call until its period ends or it is reseeded.
        logger.exception("could not charge a call to the quota counters")


def _limited_keys(user_id: int | None, moment: datetime) -> set[str]:
    from django.contrib.auth import get_user_model

    keys = set()
    gmeter = global_meter(moment)
    if gmeter.cap is not None:
        keys.add(gmeter.key)
    user = get_user_model().objects.filter(pk=user_id).first() if user_id is not None else None
    if user is not None:
        limits = limits_for(user)
        if not limits.exempt:
            keys |= {m.key for m in user_meters(user.pk, limits, moment) if m.cap is not None}
    return keys


# --- what people see -------------------------------------------------------------------------


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
